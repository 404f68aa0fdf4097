"""Tests of scripts/aws_twin.py through boto3, against a twin of their own on a free port.

    .sandbox/venv/bin/python scripts/test_aws_twin.py [-v] [TestCase.test_name ...]

The last line printed is `N passed, M failed`.
"""
import datetime
import json
import os
import socket
import subprocess
import sys
import threading
import time
import unittest
import urllib.request

import boto3
from botocore.config import Config
from botocore.exceptions import ClientError

HERE = os.path.dirname(os.path.abspath(__file__))
# Short times. Some come as TWIN_* variables, some as flags, so both ways are exercised.
ENV_TIMES = {"TWIN_RESTORE_INVISIBLE_SECONDS": "1", "TWIN_CREATING_SECONDS": "1.5",
             "TWIN_BACKING_UP_SECONDS": "1.5", "TWIN_GROUP_INVISIBLE_SECONDS": "1"}
FLAG_TIMES = ["--modifying-seconds", "1.5", "--deleting-seconds", "2",
              "--dependency-linger-seconds", "1.5"]
TWIN = {}


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def setUpModule():
    port = free_port()
    env = {**os.environ, **ENV_TIMES, "AWS_REGION": "us-east-1"}
    env.pop("AWS_ENDPOINT_URL", None)
    proc = subprocess.Popen([sys.executable, os.path.join(HERE, "aws_twin.py"), "--port", str(port),
                             "--seed", *FLAG_TIMES], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.DEVNULL, text=True)
    line = []
    reader = threading.Thread(target=lambda: line.append(proc.stdout.readline()), daemon=True)
    reader.start()
    reader.join(60)
    if not line or not line[0].startswith("ready"):
        proc.kill()
        raise RuntimeError(f"aws_twin.py did not start: {line!r}")
    TWIN.update(proc=proc, url=f"http://127.0.0.1:{port}")
    kw = dict(region_name="us-east-1", endpoint_url=TWIN["url"], aws_access_key_id="sandbox",
              aws_secret_access_key="sandbox",
              config=Config(retries={"total_max_attempts": 1}))  # see every answer as it is
    TWIN["rds"] = boto3.client("rds", **kw)
    TWIN["ec2"] = boto3.client("ec2", **kw)


def tearDownModule():
    proc = TWIN.get("proc")
    if proc:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()


def control(path="/_twin", body=None):
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(TWIN["url"] + path, data=data, method="POST" if data else "GET")
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            return resp.status, json.load(resp)
    except urllib.error.HTTPError as err:
        return err.code, json.load(err)


def unique(prefix):
    unique.n = getattr(unique, "n", 0) + 1
    return f"{prefix}-{os.getpid() % 1000}-{unique.n}"


class TwinCase(unittest.TestCase):
    @property
    def rds(self):
        return TWIN["rds"]

    @property
    def ec2(self):
        return TWIN["ec2"]

    def assertError(self, code, http, call, *args, **kwargs):
        with self.assertRaises(ClientError) as cm:
            call(*args, **kwargs)
        err = cm.exception.response
        self.assertEqual(err["Error"]["Code"], code, err["Error"])
        self.assertEqual(err["ResponseMetadata"]["HTTPStatusCode"], http, err["Error"])
        return err["Error"]

    def vpc(self):
        return self.ec2.describe_vpcs(Filters=[{"Name": "is-default", "Values": ["true"]}])["Vpcs"][0]["VpcId"]

    def default_group(self):
        return self.ec2.describe_security_groups(Filters=[
            {"Name": "vpc-id", "Values": [self.vpc()]},
            {"Name": "group-name", "Values": ["default"]}])["SecurityGroups"][0]["GroupId"]

    def new_group(self, wait=True):
        group = self.ec2.create_security_group(GroupName=unique("twin-test"), VpcId=self.vpc(),
                                               Description="test")["GroupId"]
        if wait:  # until it is visible
            self.until(lambda: self.group_visible(group), 5)
        return group

    def group_visible(self, group):
        try:
            self.ec2.describe_security_groups(GroupIds=[group])
            return True
        except ClientError as err:
            self.assertEqual(err.response["Error"]["Code"], "InvalidGroup.NotFound")
            return False

    def until(self, check, timeout, every=0.1):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            value = check()
            if value:
                return value
            time.sleep(every)
        self.fail(f"not true after {timeout}s: {check}")

    def describe(self, ident):
        """The instance as described, or None for DBInstanceNotFound."""
        try:
            return self.rds.describe_db_instances(DBInstanceIdentifier=ident)["DBInstances"][0]
        except ClientError as err:
            if err.response["Error"]["Code"] != "DBInstanceNotFound":
                raise
            self.assertEqual(err.response["ResponseMetadata"]["HTTPStatusCode"], 404)
            return None

    def watch(self, ident, until_status, timeout):
        """Statuses seen, in order, without repeats (`gone` for DBInstanceNotFound), and the
        instance descriptions seen in each."""
        seen, descriptions = [], {}
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            db = self.describe(ident)
            status = db["DBInstanceStatus"] if db else "gone"
            if not seen or seen[-1] != status:
                seen.append(status)
            descriptions.setdefault(status, []).append(db)
            if status == until_status:
                return seen, descriptions
            time.sleep(0.15)
        self.fail(f"{ident} not {until_status} after {timeout}s: saw {seen}")

    def restore(self, target, **kwargs):
        return self.rds.restore_db_instance_to_point_in_time(
            SourceDBInstanceIdentifier="prod-db", TargetDBInstanceIdentifier=target,
            UseLatestRestorableTime=True, **kwargs)["DBInstance"]

    def create_instance(self, ident, groups):
        self.rds.create_db_instance(
            DBInstanceIdentifier=ident, Engine="mysql", DBInstanceClass="db.t3.micro",
            AllocatedStorage=20, MasterUsername="admin", MasterUserPassword="password1234",
            VpcSecurityGroupIds=groups, BackupRetentionPeriod=1)


class Restore(TwinCase):
    def test_restore_is_invisible_then_creating_then_backing_up_then_available(self):
        group = self.new_group()
        target = unique("restore-seq")
        db = self.restore(target, VpcSecurityGroupIds=[group], BackupRetentionPeriod=3,
                          DeletionProtection=False, CACertificateIdentifier="rds-ca-rsa4096-g1")
        self.assertEqual(db["DBInstanceStatus"], "creating")
        self.assertNotIn("Endpoint", db)
        listed = [d["DBInstanceIdentifier"] for d in self.rds.describe_db_instances()["DBInstances"]]
        self.assertNotIn(target, listed)
        self.assertIn("prod-db", listed)
        error = self.assertError("DBInstanceNotFound", 404, self.rds.describe_db_instances,
                                 DBInstanceIdentifier=target)
        self.assertEqual(error["Message"], f"DBInstance {target} not found.")

        seen, described = self.watch(target, "available", 10)
        self.assertEqual(seen, ["gone", "creating", "backing-up", "available"])
        for d in described["creating"]:
            self.assertNotIn("Endpoint", d)
        for status in ("backing-up", "available"):
            self.assertIn("Endpoint", described[status][-1])
        final = described["available"][-1]
        self.assertEqual(final["BackupRetentionPeriod"], 3)
        self.assertFalse(final["DeletionProtection"])
        self.assertEqual(final["CACertificateIdentifier"], "rds-ca-rsa4096-g1")
        self.assertEqual(final["VpcSecurityGroups"], [{"VpcSecurityGroupId": group, "Status": "active"}])
        source = self.describe("prod-db")
        self.assertNotEqual(final["DbiResourceId"], source["DbiResourceId"])
        self.assertAlmostEqual(final["InstanceCreateTime"].timestamp(), time.time(), delta=30)
        backups = self.rds.describe_db_instance_automated_backups(
            DBInstanceIdentifier=target)["DBInstanceAutomatedBackups"]
        self.assertEqual([(b["Status"], b["DbiResourceId"]) for b in backups],
                         [("active", final["DbiResourceId"])])

    def test_restore_without_backups_or_groups_skips_backing_up_and_gets_the_default_group(self):
        target = unique("restore-nobackup")
        self.restore(target, BackupRetentionPeriod=0, DeletionProtection=True)
        seen, described = self.watch(target, "available", 8)
        self.assertEqual(seen, ["gone", "creating", "available"])
        final = described["available"][-1]
        self.assertEqual(final["BackupRetentionPeriod"], 0)
        self.assertTrue(final["DeletionProtection"])
        source_groups = [g["VpcSecurityGroupId"] for g in self.describe("prod-db")["VpcSecurityGroups"]]
        self.assertEqual(final["VpcSecurityGroups"],
                         [{"VpcSecurityGroupId": self.default_group(), "Status": "active"}])
        self.assertNotIn(self.default_group(), source_groups)

    def test_restore_time_must_be_in_the_restorable_window(self):
        now = datetime.datetime.now(datetime.timezone.utc)
        for when in (now - datetime.timedelta(days=8), now + datetime.timedelta(minutes=10)):
            target = unique("restore-window")
            self.assertError("InvalidRestoreFault", 400, self.rds.restore_db_instance_to_point_in_time,
                             SourceDBInstanceIdentifier="prod-db", TargetDBInstanceIdentifier=target,
                             RestoreTime=when)
            self.assertIsNone(self.describe(target))
        self.assertError("InvalidParameterCombination", 400, self.rds.restore_db_instance_to_point_in_time,
                         SourceDBInstanceIdentifier="prod-db", TargetDBInstanceIdentifier=unique("r"),
                         RestoreTime=now - datetime.timedelta(hours=1), UseLatestRestorableTime=True)
        target = unique("restore-window-ok")
        db = self.rds.restore_db_instance_to_point_in_time(
            SourceDBInstanceIdentifier="prod-db", TargetDBInstanceIdentifier=target,
            RestoreTime=now - datetime.timedelta(days=6))["DBInstance"]
        self.assertEqual(db["DBInstanceStatus"], "creating")

    def test_restore_needs_a_source_with_backups_that_exists(self):
        self.assertError("DBInstanceNotFound", 404, self.rds.restore_db_instance_to_point_in_time,
                         SourceDBInstanceIdentifier="no-such-db", TargetDBInstanceIdentifier=unique("r"),
                         UseLatestRestorableTime=True)
        no_backups = unique("restore-src-nobackup")
        self.restore(no_backups, BackupRetentionPeriod=0)
        # Invisible first, then creating: neither can be restored from.
        self.assertError("DBInstanceNotFound", 404, self.rds.restore_db_instance_to_point_in_time,
                         SourceDBInstanceIdentifier=no_backups, TargetDBInstanceIdentifier=unique("r"),
                         UseLatestRestorableTime=True)
        self.watch(no_backups, "creating", 5)
        self.assertError("InvalidDBInstanceState", 400, self.rds.restore_db_instance_to_point_in_time,
                         SourceDBInstanceIdentifier=no_backups, TargetDBInstanceIdentifier=unique("r"),
                         UseLatestRestorableTime=True)
        self.watch(no_backups, "available", 5)
        self.assertError("PointInTimeRestoreNotEnabled", 400, self.rds.restore_db_instance_to_point_in_time,
                         SourceDBInstanceIdentifier=no_backups, TargetDBInstanceIdentifier=unique("r"),
                         UseLatestRestorableTime=True)

    def test_second_restore_of_the_same_target_already_exists(self):
        target = unique("restore-twice")
        self.restore(target)
        self.assertError("DBInstanceAlreadyExists", 400, self.restore, target)


class ModifyAndDelete(TwinCase):
    def test_modify_needs_available_and_shows_adding_and_removing(self):
        old, new = self.new_group(), self.new_group()
        ident = unique("modify")
        self.create_instance(ident, [old])

        creating = unique("modify-creating")
        self.restore(creating)
        self.watch(creating, "creating", 5)
        error = self.assertError("InvalidDBInstanceState", 400, self.rds.modify_db_instance,
                                 DBInstanceIdentifier=creating, ApplyImmediately=True,
                                 VpcSecurityGroupIds=[new])
        self.assertEqual(error["Type"], "Sender")

        db = self.rds.modify_db_instance(DBInstanceIdentifier=ident, ApplyImmediately=True,
                                         VpcSecurityGroupIds=[new])["DBInstance"]
        self.assertEqual(db["DBInstanceStatus"], "modifying")
        self.assertCountEqual(db["VpcSecurityGroups"],
                              [{"VpcSecurityGroupId": new, "Status": "adding"},
                               {"VpcSecurityGroupId": old, "Status": "removing"}])
        self.assertError("InvalidDBInstanceState", 400, self.rds.modify_db_instance,
                         DBInstanceIdentifier=ident, ApplyImmediately=True, VpcSecurityGroupIds=[old])
        # The group being removed is still held.
        self.assertError("DependencyViolation", 400, self.ec2.delete_security_group, GroupId=old)

        seen, described = self.watch(ident, "available", 5)
        self.assertEqual(seen, ["modifying", "available"])
        self.assertEqual(described["available"][-1]["VpcSecurityGroups"],
                         [{"VpcSecurityGroupId": new, "Status": "active"}])
        released = time.monotonic()
        # Released, but real EC2 still sees the dependency for a while.
        self.assertError("DependencyViolation", 400, self.ec2.delete_security_group, GroupId=old)
        self.until(lambda: self.try_delete_group(old), 5)
        self.assertGreaterEqual(time.monotonic() - released, 1.2)
        self.assertError("DependencyViolation", 400, self.ec2.delete_security_group, GroupId=new)

    def try_delete_group(self, group):
        try:
            self.ec2.delete_security_group(GroupId=group)
            return True
        except ClientError as err:
            self.assertEqual(err.response["Error"]["Code"], "DependencyViolation")
            self.assertEqual(err.response["Error"]["Message"], f"resource {group} has a dependent object")
            return False

    def test_delete_is_deleting_for_a_while_and_holds_its_groups(self):
        group = self.new_group()
        ident = unique("delete")
        self.create_instance(ident, [group])

        creating = unique("delete-creating")
        self.restore(creating)
        self.watch(creating, "creating", 5)
        error = self.assertError("InvalidDBInstanceState", 400, self.rds.delete_db_instance,
                                 DBInstanceIdentifier=creating, SkipFinalSnapshot=True)
        self.assertIn("creating", error["Message"])

        self.assertError("InvalidParameterCombination", 400, self.rds.delete_db_instance,
                         DBInstanceIdentifier=ident)
        self.assertEqual(self.describe(ident)["DBInstanceStatus"], "available")
        db = self.rds.delete_db_instance(DBInstanceIdentifier=ident, SkipFinalSnapshot=True)["DBInstance"]
        started = time.monotonic()
        self.assertEqual(db["DBInstanceStatus"], "deleting")
        error = self.assertError("InvalidDBInstanceState", 400, self.rds.delete_db_instance,
                                 DBInstanceIdentifier=ident, SkipFinalSnapshot=True)
        self.assertEqual(error["Message"], f"Instance {ident} is already being deleted.")
        self.assertError("InvalidDBInstanceState", 400, self.rds.modify_db_instance,
                         DBInstanceIdentifier=ident, ApplyImmediately=True)
        self.assertIn(ident, control()[1]["pending_deletions"])
        self.assertEqual(control()[1]["instances"][ident], "deleting")
        self.assertError("DependencyViolation", 400, self.ec2.delete_security_group, GroupId=group)

        seen, described = self.watch(ident, "gone", 6)
        gone = time.monotonic()
        self.assertEqual(seen, ["deleting", "gone"])
        self.assertGreaterEqual(gone - started, 1.8)
        self.assertEqual(described["deleting"][-1]["VpcSecurityGroups"],
                         [{"VpcSecurityGroupId": group, "Status": "active"}])
        self.assertNotIn(ident, control()[1]["pending_deletions"])
        self.assertError("DependencyViolation", 400, self.ec2.delete_security_group, GroupId=group)
        self.until(lambda: self.try_delete_group(group), 5)
        self.assertGreaterEqual(time.monotonic() - gone, 1.2)
        self.assertError("InvalidGroup.NotFound", 400, self.ec2.describe_security_groups, GroupIds=[group])

    def test_deletion_goes_without_anyone_asking(self):
        ident = unique("delete-quiet")
        self.create_instance(ident, [self.default_group()])
        self.rds.delete_db_instance(DBInstanceIdentifier=ident, SkipFinalSnapshot=True)
        time.sleep(2.6)  # no AWS request meanwhile: the twin's own clock does it
        self.assertNotIn(ident, control("/_twin")[1]["instances"])
        self.assertIsNone(self.describe(ident))


class SecurityGroups(TwinCase):
    def test_new_group_is_invisible_for_a_while(self):
        name = unique("twin-invisible")
        group = self.ec2.create_security_group(GroupName=name, VpcId=self.vpc(), Description="t")["GroupId"]
        created = time.monotonic()
        error = self.assertError("InvalidGroup.NotFound", 400, self.ec2.describe_security_groups,
                                 GroupIds=[group])
        self.assertEqual(error["Message"], f"The security group '{group}' does not exist")
        rule = [{"IpProtocol": "tcp", "FromPort": 3306, "ToPort": 3306,
                 "IpRanges": [{"CidrIp": "127.0.0.1/32"}]}]
        self.assertError("InvalidGroup.NotFound", 400, self.ec2.authorize_security_group_ingress,
                         GroupId=group, IpPermissions=rule)
        self.assertError("InvalidGroup.NotFound", 400, self.ec2.revoke_security_group_ingress,
                         GroupId=group, IpPermissions=rule)
        self.assertError("InvalidGroup.NotFound", 400, self.ec2.delete_security_group, GroupId=group)
        all_ids = [g["GroupId"] for g in self.ec2.describe_security_groups()["SecurityGroups"]]
        self.assertNotIn(group, all_ids)
        by_name = self.ec2.describe_security_groups(
            Filters=[{"Name": "group-name", "Values": [name]}])["SecurityGroups"]
        self.assertEqual(by_name, [])
        self.assertError("InvalidGroup.Duplicate", 400, self.ec2.create_security_group,
                         GroupName=name, VpcId=self.vpc(), Description="t")

        self.until(lambda: self.group_visible(group), 5)
        self.assertGreaterEqual(time.monotonic() - created, 0.8)
        self.ec2.authorize_security_group_ingress(GroupId=group, IpPermissions=rule)
        all_ids = [g["GroupId"] for g in self.ec2.describe_security_groups()["SecurityGroups"]]
        self.assertIn(group, all_ids)
        self.ec2.delete_security_group(GroupId=group)  # no RDS instance holds it


class LostResponses(TwinCase):
    def test_lost_restore_and_group_take_effect(self):
        status, state = control("/_twin", {"lose": {"RestoreDBInstanceToPointInTime": 1,
                                                    "CreateSecurityGroup": 1}})
        self.assertEqual(status, 200)
        self.assertEqual(state["lose"], {"RestoreDBInstanceToPointInTime": 1, "CreateSecurityGroup": 1})
        target = unique("restore-lost")
        error = self.assertError("ServiceUnavailable", 503, self.restore, target)
        self.assertEqual(error["Type"], "Receiver")
        # It was created all the same: a retry finds it.
        self.assertError("DBInstanceAlreadyExists", 400, self.restore, target)
        self.watch(target, "creating", 5)

        name = unique("twin-lost")
        self.assertError("ServiceUnavailable", 503, self.ec2.create_security_group,
                         GroupName=name, VpcId=self.vpc(), Description="t")
        self.assertError("InvalidGroup.Duplicate", 400, self.ec2.create_security_group,
                         GroupName=name, VpcId=self.vpc(), Description="t")
        found = self.until(lambda: self.ec2.describe_security_groups(
            Filters=[{"Name": "group-name", "Values": [name]}])["SecurityGroups"], 5)
        self.assertEqual(len(found), 1)

        state = control()[1]
        self.assertEqual(state["lose"], {"RestoreDBInstanceToPointInTime": 0, "CreateSecurityGroup": 0})
        self.assertEqual(state["lost"], 2)
        lost = [r for r in control("/_twin/requests")[1] if r["lost"]]
        self.assertEqual([r["action"] for r in lost][-2:], ["RestoreDBInstanceToPointInTime", "CreateSecurityGroup"])
        self.assertTrue(all(r["status"] == 503 for r in lost))


class Faults(TwinCase):
    def tearDown(self):
        control("/_twin", {"throttle_every": 0, "server_error_every": 0})

    def test_throttle_and_server_errors_every_kth_request_via_the_faults_alias(self):
        status, state = control("/_faults", {"throttle_every": 2})
        self.assertEqual((status, state["throttle_every"], state["requests"]), (200, 2, 0))
        self.rds.describe_db_instances()
        self.assertError("Throttling", 400, self.rds.describe_db_instances)
        self.ec2.describe_vpcs()
        self.assertError("RequestLimitExceeded", 400, self.ec2.describe_vpcs)
        control("/_twin", {"throttle_every": 0, "server_error_every": 3})
        self.rds.describe_db_instances()
        self.rds.describe_db_instances()
        self.assertError("ServiceUnavailable", 503, self.rds.describe_db_instances)
        state = control("/_faults")[1]
        self.assertEqual((state["requests"], state["errored"], state["counters"]["errored"]), (3, 1, 1))
        self.assertEqual(state["pid"], TWIN["proc"].pid)

    def test_settings_from_environment_and_flags_and_bad_posts(self):
        state = control()[1]
        self.assertEqual(state["creating_seconds"], 1.5)  # TWIN_CREATING_SECONDS
        self.assertEqual(state["deleting_seconds"], 2)  # --deleting-seconds
        self.assertEqual(state["retained_backups"], {"prod-db": 30})  # --seed
        self.assertEqual(control("/_twin", {"no_such_setting": 1})[0], 400)
        self.assertEqual(control("/_twin", {"creating_seconds": -1})[0], 400)
        self.assertEqual(control("/_twin", {"throttle_every": 1})[0], 400)
        self.assertEqual(control("/_twin", {"lose": {"CreateSecurityGroup": "x"}})[0], 400)


class RequestLog(TwinCase):
    def test_requests_are_logged_with_secrets_masked(self):
        self.assertEqual(control("/_twin/requests/clear", {})[0], 200)
        ident = unique("logged")
        self.create_instance(ident, [self.default_group()])
        self.rds.modify_db_instance(DBInstanceIdentifier=ident, ApplyImmediately=True,
                                    MasterUserPassword="very-secret-password")
        log = control("/_twin/requests")[1]
        self.assertEqual([r["action"] for r in log][-2:], ["CreateDBInstance", "ModifyDBInstance"])
        self.assertNotIn("very-secret-password", json.dumps(log))
        self.assertNotIn("password1234", json.dumps(log))
        modify = log[-1]
        self.assertEqual(modify["params"]["MasterUserPassword"], "***")
        self.assertEqual(modify["params"]["DBInstanceIdentifier"], ident)
        self.assertEqual((modify["service"], modify["status"], modify["lost"]), ("rds", 200, False))
        self.assertGreater(modify["seq"], log[-2]["seq"])
        self.assertLessEqual(abs(modify["time"] - time.time()), 5)
        control("/_twin/requests/clear", {})
        self.assertEqual(control("/_twin/requests")[1], [])


class AutomatedBackups(TwinCase):
    def test_active_entry_of_the_source_and_a_retained_older_one(self):
        source = self.describe("prod-db")
        backups = self.rds.describe_db_instance_automated_backups(
            DBInstanceIdentifier="prod-db")["DBInstanceAutomatedBackups"]
        self.assertEqual(sorted(b["Status"] for b in backups), ["active", "retained"])
        active = next(b for b in backups if b["Status"] == "active")
        retained = next(b for b in backups if b["Status"] == "retained")
        self.assertEqual(active["DbiResourceId"], source["DbiResourceId"])
        self.assertEqual(retained["DbiResourceId"], "db-RETAINEDOLDERINSTANCE0001")
        self.assertEqual((active["Engine"], active["BackupRetentionPeriod"]), ("mysql", 7))
        now = time.time()
        day = 86400
        # The seeded prod-db was "created" 19 days ago; it keeps 7 days of backups.
        self.assertAlmostEqual(source["InstanceCreateTime"].timestamp(), now - 19 * day, delta=60)
        earliest = active["RestoreWindow"]["EarliestTime"].timestamp()
        self.assertAlmostEqual(earliest, now - 7 * day, delta=60)
        self.assertAlmostEqual(active["RestoreWindow"]["LatestTime"].timestamp(), now, delta=5)
        self.assertAlmostEqual(retained["RestoreWindow"]["EarliestTime"].timestamp(), now - 30 * day, delta=60)
        self.assertAlmostEqual(retained["RestoreWindow"]["LatestTime"].timestamp(), now - 20 * day, delta=60)

        by_id = self.rds.describe_db_instance_automated_backups(
            DbiResourceId=source["DbiResourceId"])["DBInstanceAutomatedBackups"]
        self.assertEqual([b["Status"] for b in by_id], ["active"])

        target = unique("restore-nobackups")
        self.restore(target, BackupRetentionPeriod=0)
        self.watch(target, "creating", 5)
        self.assertError("DBInstanceAutomatedBackupNotFound", 404,
                         self.rds.describe_db_instance_automated_backups, DBInstanceIdentifier=target)

    def test_retained_backups_can_be_set(self):
        try:
            control("/_twin", {"retained_backups": {"prod-db": 30, "gone-db": 12}})
            backups = self.rds.describe_db_instance_automated_backups()["DBInstanceAutomatedBackups"]
            gone = [b for b in backups if b["DBInstanceIdentifier"] == "gone-db"]
            self.assertEqual([b["Status"] for b in gone], ["retained"])
            self.assertAlmostEqual(gone[0]["RestoreWindow"]["LatestTime"].timestamp(),
                                   time.time() - 2 * 86400, delta=60)
        finally:
            control("/_twin", {"retained_backups": {"prod-db": 30}})


class ClusterCase(TwinCase):
    def describe_cluster(self, ident):
        """The cluster as described, or None for DBClusterNotFoundFault."""
        try:
            return self.rds.describe_db_clusters(DBClusterIdentifier=ident)["DBClusters"][0]
        except ClientError as err:
            if err.response["Error"]["Code"] != "DBClusterNotFoundFault":
                raise
            self.assertEqual(err.response["ResponseMetadata"]["HTTPStatusCode"], 404)
            return None

    def watch_cluster(self, ident, until_status, timeout):
        seen, descriptions = [], {}
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            cluster = self.describe_cluster(ident)
            status = cluster["Status"] if cluster else "gone"
            if not seen or seen[-1] != status:
                seen.append(status)
            descriptions.setdefault(status, []).append(cluster)
            if status == until_status:
                return seen, descriptions
            time.sleep(0.15)
        self.fail(f"cluster {ident} not {until_status} after {timeout}s: saw {seen}")

    def restore_cluster(self, target, source="prod-aurora", **kwargs):
        if "RestoreToTime" not in kwargs:
            kwargs.setdefault("UseLatestRestorableTime", True)
        return self.rds.restore_db_cluster_to_point_in_time(
            SourceDBClusterIdentifier=source, DBClusterIdentifier=target, **kwargs)["DBCluster"]

    def add_instance(self, cluster, ident, instance_class="db.r6g.large"):
        return self.rds.create_db_instance(DBInstanceIdentifier=ident, DBClusterIdentifier=cluster,
                                           Engine="aurora-mysql", DBInstanceClass=instance_class)["DBInstance"]

    def members(self, ident):
        return [(m["DBInstanceIdentifier"], m["IsClusterWriter"])
                for m in self.describe_cluster(ident)["DBClusterMembers"]]


class ClusterSeed(ClusterCase):
    def test_seeded_clusters_are_available_backdated_and_beside_prod_db(self):
        clusters = {c["DBClusterIdentifier"]: c for c in self.rds.describe_db_clusters()["DBClusters"]}
        self.assertLessEqual({"prod-aurora", "prod-maz"}, set(clusters))
        aurora, maz = clusters["prod-aurora"], clusters["prod-maz"]
        now, day = time.time(), 86400
        groups = {g["GroupName"]: g["GroupId"] for g in self.ec2.describe_security_groups()["SecurityGroups"]}
        for cluster, group in ((aurora, "prod-aurora-app-access"), (maz, "prod-maz-app-access")):
            self.assertEqual(cluster["Status"], "available")
            self.assertEqual(cluster["BackupRetentionPeriod"], 7)
            self.assertEqual(cluster["DBSubnetGroup"], "prod-db-subnets")
            self.assertEqual(cluster["VpcSecurityGroups"], [{"VpcSecurityGroupId": groups[group], "Status": "active"}])
            self.assertAlmostEqual(cluster["ClusterCreateTime"].timestamp(), now - 19 * day, delta=60)
            self.assertAlmostEqual(cluster["EarliestRestorableTime"].timestamp(), now - 7 * day, delta=60)
            self.assertAlmostEqual(cluster["LatestRestorableTime"].timestamp(), now, delta=5)
            self.assertNotIn("BacktrackWindow", cluster)
        self.assertNotEqual(aurora["DbClusterResourceId"], maz["DbClusterResourceId"])
        self.assertEqual((aurora["Engine"], aurora["EngineMode"], aurora["EngineVersion"]),
                         ("aurora-mysql", "provisioned", "8.0.mysql_aurora.3.05.2"))
        self.assertEqual(aurora["DBClusterParameterGroup"], "prod-aurora-cluster-params")
        self.assertEqual(aurora["DBClusterMembers"][0]["DBInstanceIdentifier"], "prod-aurora-writer")
        self.assertTrue(aurora["DBClusterMembers"][0]["IsClusterWriter"])
        self.assertEqual((maz["Engine"], maz["DBClusterInstanceClass"], maz["StorageType"], maz["Iops"],
                          maz["AllocatedStorage"]), ("mysql", "db.m6gd.large", "io1", 1000, 100))
        self.assertEqual([(m["DBInstanceIdentifier"], m["IsClusterWriter"]) for m in maz["DBClusterMembers"]],
                         [("prod-maz-instance-1", True), ("prod-maz-instance-2", False),
                          ("prod-maz-instance-3", False)])
        params = [g["DBClusterParameterGroupName"]
                  for g in self.rds.describe_db_cluster_parameter_groups()["DBClusterParameterGroups"]]
        self.assertIn("prod-aurora-cluster-params", params)
        instances = {d["DBInstanceIdentifier"]: d for d in self.rds.describe_db_instances()["DBInstances"]}
        writer = instances["prod-aurora-writer"]
        self.assertEqual((writer["DBInstanceStatus"], writer["DBInstanceClass"], writer["PubliclyAccessible"],
                          writer["DBClusterIdentifier"]), ("available", "db.r6g.large", False, "prod-aurora"))
        for n in (1, 2, 3):
            self.assertEqual(instances[f"prod-maz-instance-{n}"]["DBInstanceStatus"], "available")
            self.assertEqual(instances[f"prod-maz-instance-{n}"]["DBInstanceClass"], "db.m6gd.large")
        # prod-db as before: its own group, not in a cluster.
        prod = instances["prod-db"]
        self.assertEqual(prod["VpcSecurityGroups"], [{"VpcSecurityGroupId": groups["prod-db-app-access"],
                                                      "Status": "active"}])
        self.assertNotIn("DBClusterIdentifier", prod)
        state = control()[1]["clusters"]
        self.assertEqual((state["prod-aurora"], state["prod-maz"]), ("available", "available"))
        # A cluster's backups are the cluster's: no instance automated backups for its members.
        backups = self.rds.describe_db_instance_automated_backups()["DBInstanceAutomatedBackups"]
        members = {i for i, d in instances.items() if d.get("DBClusterIdentifier")}
        self.assertIn("prod-aurora-writer", members)
        self.assertFalse({b["DBInstanceIdentifier"] for b in backups} & members)


class ClusterRestore(ClusterCase):
    def test_restored_cluster_is_invisible_then_creating_then_available(self):
        group = self.new_group()
        target = unique("cluster-seq")
        plain = unique("cluster-plain")
        cluster = self.restore_cluster(
            target, VpcSecurityGroupIds=[group], RestoreType="full-copy", BacktrackWindow=3600,
            DBClusterParameterGroupName="prod-aurora-cluster-params", DBSubnetGroupName="prod-db-subnets",
            Tags=[{"Key": "purpose", "Value": "restore"}])
        self.restore_cluster(plain, RestoreType="copy-on-write")
        self.assertEqual(cluster["Status"], "creating")
        listed = [c["DBClusterIdentifier"] for c in self.rds.describe_db_clusters()["DBClusters"]]
        self.assertNotIn(target, listed)
        error = self.assertError("DBClusterNotFoundFault", 404, self.rds.describe_db_clusters,
                                 DBClusterIdentifier=target)
        self.assertEqual(error["Message"], f"DBCluster {target} not found.")
        # No instance in an unknown cluster, nor in a creating one; no delete either.
        self.assertError("DBClusterNotFoundFault", 404, self.add_instance, target, unique("too-soon"))
        self.watch_cluster(target, "creating", 5)
        self.assertError("InvalidDBClusterStateFault", 400, self.add_instance, target, unique("too-soon"))
        self.assertError("InvalidDBClusterStateFault", 400, self.rds.delete_db_cluster,
                         DBClusterIdentifier=target, SkipFinalSnapshot=True)
        # Nor a restore from a creating cluster.
        self.assertError("InvalidDBClusterStateFault", 400, self.restore_cluster, unique("r"), source=target)

        seen, described = self.watch_cluster(target, "available", 6)
        self.assertEqual(seen, ["creating", "available"])
        final = described["available"][-1]
        self.assertEqual(final["VpcSecurityGroups"], [{"VpcSecurityGroupId": group, "Status": "active"}])
        self.assertEqual(final["TagList"], [{"Key": "purpose", "Value": "restore"}])
        self.assertFalse(final["DeletionProtection"])
        self.assertEqual(final["BacktrackWindow"], 3600)
        self.assertEqual(final["DBClusterMembers"], [])
        self.assertEqual((final["Engine"], final["EngineMode"]), ("aurora-mysql", "provisioned"))
        self.assertNotEqual(final["DbClusterResourceId"], self.describe_cluster("prod-aurora")["DbClusterResourceId"])
        self.assertAlmostEqual(final["ClusterCreateTime"].timestamp(), time.time(), delta=30)
        self.assertAlmostEqual(final["EarliestRestorableTime"].timestamp(), final["ClusterCreateTime"].timestamp(),
                               delta=5)  # created just now: its window starts then
        other = self.watch_cluster(plain, "available", 3)[1]["available"][-1]
        self.assertEqual(other["VpcSecurityGroups"], [{"VpcSecurityGroupId": self.default_group(), "Status": "active"}])
        self.assertEqual(other.get("TagList"), [])
        self.assertNotIn("BacktrackWindow", other)
        self.assertFalse(other["DeletionProtection"])
        self.assertNotEqual(other["DbClusterResourceId"], final["DbClusterResourceId"])

        # The cluster alone (no instances) holds its group, while deleting too, and for a while after.
        self.assertError("DependencyViolation", 400, self.ec2.delete_security_group, GroupId=group)
        self.rds.delete_db_cluster(DBClusterIdentifier=target, SkipFinalSnapshot=True)
        self.assertError("DependencyViolation", 400, self.ec2.delete_security_group, GroupId=group)
        self.watch_cluster(target, "gone", 5)
        gone = time.monotonic()
        self.assertError("DependencyViolation", 400, self.ec2.delete_security_group, GroupId=group)
        self.until(lambda: ModifyAndDelete.try_delete_group(self, group), 5)
        self.assertGreaterEqual(time.monotonic() - gone, 1.2)

    def test_cluster_restore_time_and_source_are_checked(self):
        now = datetime.datetime.now(datetime.timezone.utc)
        for when in (now - datetime.timedelta(days=8), now + datetime.timedelta(minutes=10)):
            target = unique("cluster-window")
            error = self.assertError("InvalidRestoreFault", 400, self.restore_cluster, target, RestoreToTime=when)
            self.assertIn("restorable window", error["Message"])
            self.assertIsNone(self.describe_cluster(target))
        self.assertError("InvalidParameterCombination", 400, self.restore_cluster, unique("r"),
                         RestoreToTime=now - datetime.timedelta(hours=1), RestoreType="copy-on-write")
        self.assertError("InvalidParameterCombination", 400, self.restore_cluster, unique("r"),
                         RestoreToTime=now - datetime.timedelta(hours=1), UseLatestRestorableTime=True)
        self.assertError("DBClusterNotFoundFault", 404, self.restore_cluster, unique("r"), source="no-such-cluster")
        target = unique("cluster-window-ok")
        cluster = self.restore_cluster(target, RestoreToTime=now - datetime.timedelta(days=6))
        self.assertEqual(cluster["Status"], "creating")
        self.assertError("DBClusterAlreadyExistsFault", 400, self.restore_cluster, target)
        self.assertError("DBClusterAlreadyExistsFault", 400, self.restore_cluster, "prod-aurora")
        # A restored cluster has its own window: from its creation on.
        self.watch_cluster(target, "available", 5)
        self.assertError("InvalidRestoreFault", 400, self.restore_cluster, unique("r"), source=target,
                         RestoreToTime=now - datetime.timedelta(hours=1))


class AuroraInstances(ClusterCase):
    def test_instances_of_a_cluster_and_deleting_them_and_the_cluster(self):
        group = self.new_group()
        target, serverless = unique("aurora-members"), unique("aurora-serverless")
        self.restore_cluster(target, VpcSecurityGroupIds=[group])
        self.restore_cluster(serverless, ServerlessV2ScalingConfiguration={"MinCapacity": 0.5, "MaxCapacity": 4})
        self.watch_cluster(target, "available", 6)
        self.watch_cluster(serverless, "available", 3)

        writer, reader = unique("aurora-writer"), unique("aurora-reader")
        created = self.add_instance(target, writer)
        self.assertEqual(created["DBInstanceStatus"], "creating")
        self.add_instance(target, reader)
        self.assertError("InvalidParameterCombination", 400, self.add_instance, target, unique("sl"), "db.serverless")
        self.add_instance(serverless, unique("sl-ok"), "db.serverless")
        self.assertEqual(self.members(target), [(writer, True), (reader, False)])

        seen, described = self.watch(writer, "available", 6)
        self.assertEqual(seen, ["gone", "creating", "available"])  # no backing-up for a member
        for d in described["creating"]:
            self.assertNotIn("Endpoint", d)
        final = described["available"][-1]
        self.assertEqual(final["Endpoint"]["Address"], f"{writer}.aaaaaaaaaa.us-east-1.rds.amazonaws.com")
        self.assertEqual(final["VpcSecurityGroups"], [{"VpcSecurityGroupId": group, "Status": "active"}])
        self.assertEqual(final["DBClusterIdentifier"], target)
        self.watch(reader, "available", 3)

        # Aurora: the cluster goes only once its instances go.
        error = self.assertError("InvalidDBClusterStateFault", 400, self.rds.delete_db_cluster,
                                 DBClusterIdentifier=target, SkipFinalSnapshot=True)
        self.assertIn("still contains DB instances", error["Message"])
        self.assertError("InvalidParameterCombination", 400, self.rds.delete_db_instance,
                         DBInstanceIdentifier=writer, FinalDBSnapshotIdentifier=unique("snap"))
        self.assertEqual(self.rds.delete_db_instance(DBInstanceIdentifier=writer)["DBInstance"]["DBInstanceStatus"],
                         "deleting")
        self.assertError("InvalidDBClusterStateFault", 400, self.rds.delete_db_cluster,
                         DBClusterIdentifier=target, SkipFinalSnapshot=True)
        self.rds.delete_db_instance(DBInstanceIdentifier=reader, SkipFinalSnapshot=True)
        self.assertError("InvalidParameterCombination", 400, self.rds.delete_db_cluster, DBClusterIdentifier=target)
        snapshot = unique("final")
        deleting = self.rds.delete_db_cluster(DBClusterIdentifier=target,
                                              FinalDBSnapshotIdentifier=snapshot)["DBCluster"]
        started = time.monotonic()
        self.assertEqual(deleting["Status"], "deleting")
        error = self.assertError("InvalidDBClusterStateFault", 400, self.rds.delete_db_cluster,
                                 DBClusterIdentifier=target, SkipFinalSnapshot=True)
        self.assertEqual(error["Message"], f"DB cluster {target} is already being deleted.")
        self.assertEqual(control()[1]["clusters"][target], "deleting")
        self.assertIn(target, control()[1]["pending_cluster_deletions"])
        snapshots = self.rds.describe_db_cluster_snapshots(DBClusterSnapshotIdentifier=snapshot)["DBClusterSnapshots"]
        self.assertEqual([s["DBClusterIdentifier"] for s in snapshots], [target])
        self.assertError("DependencyViolation", 400, self.ec2.delete_security_group, GroupId=group)

        seen, described = self.watch_cluster(target, "gone", 5)
        gone = time.monotonic()
        self.assertEqual(seen, ["deleting", "gone"])
        self.assertGreaterEqual(gone - started, 1.8)
        self.assertEqual(described["deleting"][-1]["VpcSecurityGroups"],
                         [{"VpcSecurityGroupId": group, "Status": "active"}])
        self.assertIsNone(self.describe(writer))
        self.assertIsNone(self.describe(reader))
        self.assertError("DependencyViolation", 400, self.ec2.delete_security_group, GroupId=group)
        self.until(lambda: ModifyAndDelete.try_delete_group(self, group), 5)
        self.assertGreaterEqual(time.monotonic() - gone, 1.2)
        # The name is free again.
        self.restore_cluster(target)


class MultiAzClusters(ClusterCase):
    def test_rds_creates_and_deletes_the_instances_of_a_multi_az_cluster(self):
        target = unique("maz")
        cluster = self.restore_cluster(target, source="prod-maz", DBClusterInstanceClass="db.m6gd.large",
                                       StorageType="io1", Iops=1000)
        self.assertEqual(cluster["Status"], "creating")
        names = [f"{target}-instance-{n}" for n in (1, 2, 3)]
        self.assertIsNone(self.describe(names[0]))  # unknown at first, like the cluster
        seen, described = self.watch(names[0], "available", 6)
        self.assertEqual(seen, ["gone", "creating", "available"])
        self.watch_cluster(target, "available", 2)
        self.assertEqual(self.members(target), [(names[0], True), (names[1], False), (names[2], False)])
        for name in names:
            db = self.describe(name)
            self.assertEqual((db["DBInstanceStatus"], db["DBInstanceClass"], db["DBClusterIdentifier"],
                              db["StorageType"]), ("available", "db.m6gd.large", target, "io1"))
            self.assertEqual(db["VpcSecurityGroups"], [{"VpcSecurityGroupId": self.default_group(), "Status": "active"}])
        described = self.describe_cluster(target)
        self.assertEqual((described["StorageType"], described["Iops"]), ("io1", 1000))

        error = self.assertError("InvalidParameterCombination", 400, self.rds.create_db_instance,
                                 DBInstanceIdentifier=unique("maz-extra"), DBClusterIdentifier=target,
                                 Engine="mysql", DBInstanceClass="db.m6gd.large")
        self.assertIn("Multi-AZ", error["Message"])
        self.assertError("InvalidParameterCombination", 400, self.rds.delete_db_instance,
                         DBInstanceIdentifier=names[1], SkipFinalSnapshot=True)
        self.assertError("InvalidParameterCombination", 400, self.rds.delete_db_cluster, DBClusterIdentifier=target)
        # RDS deletes the instances with the cluster.
        self.assertEqual(self.rds.delete_db_cluster(DBClusterIdentifier=target, SkipFinalSnapshot=True)
                         ["DBCluster"]["Status"], "deleting")
        for name in names:
            self.assertEqual(self.describe(name)["DBInstanceStatus"], "deleting")
        self.assertEqual(self.watch_cluster(target, "gone", 5)[0], ["deleting", "gone"])
        for name in names:
            self.assertIsNone(self.describe(name))

    def test_created_multi_az_cluster_gets_its_instances_and_is_creating(self):
        ident = unique("maz-created")
        cluster = self.rds.create_db_cluster(
            DBClusterIdentifier=ident, Engine="mysql", DBClusterInstanceClass="db.m6gd.large",
            StorageType="io1", Iops=1000, AllocatedStorage=100, MasterUsername="admin",
            MasterUserPassword="password1234")["DBCluster"]
        self.assertEqual(cluster["Status"], "creating")
        self.assertEqual(self.describe_cluster(ident)["Status"], "creating")  # visible at once
        self.assertEqual([m for m, _ in self.members(ident)], [f"{ident}-instance-{n}" for n in (1, 2, 3)])
        self.assertError("DBClusterAlreadyExistsFault", 400, self.rds.create_db_cluster,
                         DBClusterIdentifier=ident, Engine="mysql", DBClusterInstanceClass="db.m6gd.large",
                         StorageType="io1", Iops=1000, AllocatedStorage=100, MasterUsername="admin",
                         MasterUserPassword="password1234")
        self.assertEqual(self.watch_cluster(ident, "available", 4)[0], ["creating", "available"])


class ClusterFaults(ClusterCase):
    def tearDown(self):
        control("/_twin", {"throttle_every": 0, "fail": {}})

    def test_lost_failed_throttled_and_logged_cluster_calls(self):
        control("/_twin/requests/clear", {})
        control("/_twin", {"lose": {"RestoreDBClusterToPointInTime": 1}})
        target = unique("cluster-lost")
        self.assertError("ServiceUnavailable", 503, self.restore_cluster, target)
        self.assertError("DBClusterAlreadyExistsFault", 400, self.restore_cluster, target)
        self.watch_cluster(target, "creating", 5)
        control("/_twin", {"fail": {"DeleteDBCluster": ["AccessDenied", 403, "not allowed"]}})
        self.assertError("AccessDenied", 403, self.rds.delete_db_cluster, DBClusterIdentifier=target,
                         SkipFinalSnapshot=True)
        control("/_twin", {"fail": {}, "throttle_every": 2})
        self.rds.describe_db_clusters()
        self.assertError("Throttling", 400, self.rds.describe_db_clusters)
        control("/_twin", {"throttle_every": 0})
        log = control("/_twin/requests")[1]
        actions = [(r["action"], r["status"], r["lost"]) for r in log if "Cluster" in r["action"]]
        self.assertEqual(actions[:3], [("RestoreDBClusterToPointInTime", 503, True),
                                       ("RestoreDBClusterToPointInTime", 400, False),
                                       ("DescribeDBClusters", 404, False)])
        self.assertIn(("DeleteDBCluster", 403, False), actions)
        self.assertEqual(log[0]["params"]["DBClusterIdentifier"], target)


def main():
    module = sys.modules[__name__]
    names = [a for a in sys.argv[1:] if not a.startswith("-")]
    loader = unittest.defaultTestLoader
    suite = loader.loadTestsFromNames(names, module) if names else loader.loadTestsFromModule(module)
    verbosity = 2 if "-v" in sys.argv else 1
    result = unittest.TextTestRunner(verbosity=verbosity, stream=sys.stdout).run(suite)
    failed = len(result.failures) + len(result.errors) + len(result.unexpectedSuccesses)
    passed = result.testsRun - failed - len(result.skipped) - len(result.expectedFailures)
    print(f"{passed} passed, {failed} failed")
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
