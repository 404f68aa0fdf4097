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
