"""Seeds and inspects the moto server for the sandbox (run with the sandbox's venv python).

seed:  the source instance `prod-db` (mysql 8.0, 7 days of backups) in the default VPC, in a
       subnet group of that VPC, with a security group of its own. Idempotent.
vpc:   prints the default VPC id (moto gives it a new id on every start).
"""
import os
import sys

import boto3

REGION = os.environ.get("AWS_REGION", "us-east-1")


def clients():
    endpoint = os.environ["AWS_ENDPOINT_URL"]
    kw = dict(region_name=REGION, endpoint_url=endpoint,
              aws_access_key_id="sandbox", aws_secret_access_key="sandbox")
    return boto3.client("rds", **kw), boto3.client("ec2", **kw)


def default_vpc(ec2):
    vpcs = ec2.describe_vpcs(Filters=[{"Name": "is-default", "Values": ["true"]}])["Vpcs"]
    return vpcs[0]["VpcId"]


def seed():
    rds, ec2 = clients()
    vpc = default_vpc(ec2)
    existing = [d["DBInstanceIdentifier"] for d in rds.describe_db_instances()["DBInstances"]]
    if "prod-db" in existing:
        return
    subnets = [s["SubnetId"] for s in ec2.describe_subnets(
        Filters=[{"Name": "vpc-id", "Values": [vpc]}])["Subnets"]]
    rds.create_db_subnet_group(DBSubnetGroupName="prod-db-subnets",
                               DBSubnetGroupDescription="prod-db subnets", SubnetIds=subnets)
    sg = ec2.create_security_group(GroupName="prod-db-app-access", VpcId=vpc,
                                   Description="application servers to prod-db")["GroupId"]
    ec2.authorize_security_group_ingress(GroupId=sg, IpPermissions=[{
        "IpProtocol": "tcp", "FromPort": 3306, "ToPort": 3306,
        "IpRanges": [{"CidrIp": "10.0.0.0/16", "Description": "app subnet"}]}])
    rds.create_db_parameter_group(DBParameterGroupName="prod-db-params",
                                  DBParameterGroupFamily="mysql8.0", Description="prod-db parameters")
    rds.create_db_instance(
        DBInstanceIdentifier="prod-db", Engine="mysql", EngineVersion="8.0.35",
        DBInstanceClass="db.t3.medium", AllocatedStorage=20, MasterUsername="admin",
        MasterUserPassword="not-used-by-the-sandbox", BackupRetentionPeriod=7,
        DBSubnetGroupName="prod-db-subnets", VpcSecurityGroupIds=[sg],
        DBParameterGroupName="prod-db-params", PubliclyAccessible=False, Port=3306,
        Tags=[{"Key": "team", "Value": "billing"}])


if __name__ == "__main__":
    cmd = sys.argv[1] if len(sys.argv) > 1 else "seed"
    if cmd == "seed":
        seed()
    elif cmd == "vpc":
        print(default_vpc(clients()[1]))
    else:
        sys.exit(f"unknown command {cmd!r}: use seed or vpc")
