//! The cloud side: the AWS adapters of the control-plane ports (RDS and EC2); DB clusters'
//! calls in a file of their own.

pub mod aws;
mod clusters;
