//! The cloud side: the AWS adapters of the control-plane ports (RDS and EC2).

pub mod aws;
