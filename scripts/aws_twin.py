"""A strict AWS twin: moto behind a middleware that behaves like real RDS and EC2 (run with the
sandbox's venv python).

    python scripts/aws_twin.py --port N [--seed] [--throttle-every K] [--server-error-every K]
                               [--restore-invisible-seconds S] [--creating-seconds S]
                               [--backing-up-seconds S] [--modifying-seconds S]
                               [--deleting-seconds S] [--group-invisible-seconds S]
                               [--dependency-linger-seconds S] [--lose ACTION=N ...]
                               [--retained-backup IDENT=DAYS ...]

It serves moto's own WSGI application (the one `moto_server` runs) on 127.0.0.1:N, in-process,
and adds what moto leaves out (every duration is a setting; defaults are short, for tests):

* RestoreDBInstanceToPointInTime checks its source: it must exist, be neither creating nor
  deleting, keep backups, and RestoreTime must lie in its restorable window (the seeded prod-db
  was created 19 days ago and keeps 7 days). moto checks none of that.
* A restored instance is unknown (DBInstanceNotFound) for restore_invisible_seconds, then
  `creating` without an Endpoint for creating_seconds, then `backing-up` for backing_up_seconds
  (skipped when the restore asked for BackupRetentionPeriod=0), then `available`. It keeps the
  BackupRetentionPeriod, DeletionProtection and CACertificateIdentifier the request sent, and
  exactly the VpcSecurityGroupIds it sent, or the VPC's `default` group when it sent none.
* ModifyDBInstance and DeleteDBInstance need an `available` instance (InvalidDBInstanceState).
  A modify leaves the instance `modifying` for modifying_seconds (groups `adding`/`removing`); a
  delete leaves it `deleting`, with its groups, for deleting_seconds before moto deletes it. A
  delete needs SkipFinalSnapshot or FinalDBSnapshotIdentifier. Each instance has its own
  DbiResourceId (moto gives all the same one).
* DeleteSecurityGroup answers DependencyViolation while an RDS instance or cluster holds the
  group and for dependency_linger_seconds after the last one let it go. A new group is unknown
  (InvalidGroup.NotFound) and left out of DescribeSecurityGroups for group_invisible_seconds.
* DescribeDBInstanceAutomatedBackups is answered here: an `active` entry per instance with
  backups, and `retained` entries of older deleted instances (--seed adds one for prod-db).
* DB clusters (Aurora MySQL, and Multi-AZ DB clusters: engine mysql with DBClusterInstanceClass).
  RestoreDBClusterToPointInTime checks its source (it must exist and be available), RestoreToTime
  against the source's window [EarliestRestorableTime, LatestRestorableTime], and refuses
  copy-on-write with a RestoreToTime; a taken name is DBClusterAlreadyExistsFault (moto replaces
  the cluster). The new cluster is unknown (DBClusterNotFoundFault) for restore_invisible_seconds,
  `creating` for creating_seconds, then `available`; it keeps exactly the groups, tags,
  DeletionProtection and BacktrackWindow sent (the VPC's `default` group when none). A created
  cluster is `creating` at once. CreateDBInstance into a cluster needs it `available`
  (InvalidDBClusterStateFault), and db.serverless needs ServerlessV2ScalingConfiguration; the
  member is unknown, `creating`, then `available`. A Multi-AZ DB cluster gets its three instances
  `<cluster>-instance-1..3` from the twin (moto creates none), refuses CreateDBInstance and
  DeleteDBInstance of a member, and deletes them with itself. DeleteDBCluster needs `available`,
  no Aurora instance that is not `deleting`, and SkipFinalSnapshot or FinalDBSnapshotIdentifier;
  the cluster is then `deleting` (holding its groups) for deleting_seconds. --seed adds
  `prod-aurora` (with writer `prod-aurora-writer`) and `prod-maz`, created 19 days ago too.
* Faults: every K-th request throttled (HTTP 400 Throttling / RequestLimitExceeded) or answered
  503 ServiceUnavailable without reaching moto; and lost responses: the next N calls of an action
  reach moto and take effect, but the caller gets 503; and errors on demand: POST /_twin
  {"fail": {"CreateSecurityGroup": ["UnauthorizedOperation", 403, "You are not ..."]}} answers
  every call of that action with that error, without reaching moto.

Every setting is a flag, an environment variable TWIN_<NAME> (e.g. TWIN_CREATING_SECONDS) and a
key of POST /_twin. --seed creates `prod-db` and friends exactly like scripts/sandbox_moto.py,
and the clusters `prod-aurora` and `prod-maz` (seed_clusters below);
the twin's rules and faults are off (and requests not counted) until seeding is done. Once
listening (and seeded) it prints `ready N` on stdout, then serves until SIGTERM/SIGINT.

Control endpoint (`/_faults` is an alias of `/_twin`):
  GET  /_twin                 settings, counters, pid, instance and cluster statuses, pending
                              deletions (JSON)
  POST /_twin                 a JSON object of settings to change; resets the counters
  GET  /_twin/requests        every request seen: [{seq, time, service, action, params, status, lost}]
  POST /_twin/requests/clear  empties that log
"""
import argparse
import collections
import datetime
import hashlib
import io
import json
import os
import random
import re
import signal
import string
import sys
import threading
import time
import urllib.parse
import urllib.request
import uuid
from xml.sax.saxutils import escape

from werkzeug.serving import run_simple

from moto.core import DEFAULT_ACCOUNT_ID
from moto.ec2.models import ec2_backends
from moto.ec2.models.security_groups import SecurityGroupBackend
from moto.moto_server.werkzeug_app import (
    DomainDispatcherApplication,
    MotoRequestHandler,
    create_backend_app,
)
from moto.rds.exceptions import (
    DBClusterNotFoundError,
    DBInstanceNotFoundError,
    InvalidParameterCombination,
    RDSClientError,
)
from moto.rds.models import DBCluster, DBInstance, DBInstanceClustered, RDSBackend, rds_backends
from moto.core.responses import ActionResult
from moto.rds.responses import RDSResponse

DURATIONS = ("restore_invisible_seconds", "creating_seconds", "backing_up_seconds",
             "modifying_seconds", "deleting_seconds", "group_invisible_seconds",
             "dependency_linger_seconds")
DEFAULTS = {"throttle_every": 0, "server_error_every": 0, "restore_invisible_seconds": 1,
            "creating_seconds": 2, "backing_up_seconds": 2, "modifying_seconds": 2,
            "deleting_seconds": 3, "group_invisible_seconds": 1, "dependency_linger_seconds": 2}
SETTINGS = tuple(DEFAULTS) + ("lose", "retained_backups", "fail")
COUNTERS = ("requests", "throttled", "errored", "rewritten", "lost", "rejected")
LOG_LIMIT = 20000
SECRET_FIELD = re.compile(r"password|secret|token", re.I)
RDS_XMLNS = "http://rds.amazonaws.com/doc/2014-10-31/"
TICK_SECONDS = 0.2
SEEDED_AGE_DAYS = 19

HTTP_REASONS = {400: "Bad Request", 403: "Forbidden", 404: "Not Found", 409: "Conflict",
                500: "Internal Server Error", 503: "Service Unavailable"}

REQUEST_ID = re.compile(rb"<Request[Ii][Dd]>([^<]+)</Request[Ii][Dd]>")

TWIN = None  # the running Twin, read by the patches of moto below


def check_every(name, value):
    # Every request (K=1) would make every call fail even with retries, hence K >= 2.
    if isinstance(value, bool) or not isinstance(value, int) or value < 0 or value == 1:
        raise ValueError(f"{name} must be 0 (off) or an integer >= 2, not {value!r}")
    return value


def check_seconds(name, value):
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
        raise ValueError(f"{name} must be a number >= 0, not {value!r}")
    return value


def check_counts(name, value):
    """{"Action": N, ...} with N an integer >= 0 (lose) or a number of days >= 0 (retained)."""
    if not isinstance(value, dict):
        raise ValueError(f"{name} must be a JSON object, not {value!r}")
    for key, n in value.items():
        if not isinstance(key, str) or isinstance(n, bool) or not isinstance(n, (int, float)) or n < 0:
            raise ValueError(f"{name}: {key!r} needs a number >= 0, not {n!r}")
        if name == "lose" and not isinstance(n, int):
            raise ValueError(f"lose: {key!r} needs an integer, not {n!r}")
    return value


def check_failures(name, value):
    """{"Action": ["Code", HTTP status, "message"], ...}: every call of Action answers that error."""
    if not isinstance(value, dict):
        raise ValueError(f"{name} must be a JSON object, not {value!r}")
    for key, spec in value.items():
        if (not isinstance(spec, list) or len(spec) != 3 or not isinstance(spec[0], str)
                or not isinstance(spec[1], int) or not 400 <= spec[1] <= 599 or not isinstance(spec[2], str)):
            raise ValueError(f"{name}: {key!r} needs [code, HTTP status 400-599, message], not {spec!r}")
    return value


CHECKS = {"throttle_every": check_every, "server_error_every": check_every,
          "lose": check_counts, "retained_backups": check_counts, "fail": check_failures,
          **{name: check_seconds for name in DURATIONS}}


def error_body(service, code, message, fault_type):
    """The Query-protocol error body the AWS SDKs parse; EC2 has a shape of its own."""
    request_id = str(uuid.uuid4())
    message = escape(message)
    if service == "ec2":
        return (f"<Response><Errors><Error><Code>{code}</Code><Message>{message}</Message>"
                f"</Error></Errors><RequestID>{request_id}</RequestID></Response>").encode()
    return (f"<ErrorResponse><Error><Type>{fault_type}</Type><Code>{code}</Code>"
            f"<Message>{message}</Message></Error><RequestId>{request_id}</RequestId>"
            f"</ErrorResponse>").encode()


def credential_scope(environ):
    """(region, service) of a SigV4 credential scope: Credential=AKID/date/<region>/<service>/aws4_request."""
    match = re.search(r"Credential=[^/,]*/[^/,]*/([^/,]*)/([^/,]*)/aws4_request",
                      environ.get("HTTP_AUTHORIZATION", ""))
    return (match.group(1), match.group(2).lower()) if match else (None, None)


def iso(dt):
    return dt.strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def utc(dt):
    """moto keeps naive UTC datetimes."""
    return dt.replace(tzinfo=datetime.timezone.utc) if dt.tzinfo is None else dt


def new_dbi_resource_id():
    return "db-" + "".join(random.choices(string.ascii_uppercase + "234567", k=26))


# ---------------------------------------------------------------------------------------------
# Patches of moto's models. Each one is a no-op until the twin is enabled (after seeding), except
# the ones that only make moto's records right (restore parameters, a DbiResourceId per instance).

ORIG = {
    "create_db_instance": RDSBackend.create_db_instance,
    "restore": RDSBackend.restore_db_instance_to_point_in_time,
    "describe_db_instances": RDSBackend.describe_db_instances,
    "modify_db_instance": RDSBackend.modify_db_instance,
    "delete_db_instance": RDSBackend.delete_db_instance,
    "endpoint": DBInstance.endpoint,
    "memberships": DBInstance.vpc_security_group_membership_list,
    "create_security_group": SecurityGroupBackend.create_security_group,
    "describe_security_groups": SecurityGroupBackend.describe_security_groups,
    "create_db_cluster": RDSBackend.create_db_cluster,
    "restore_cluster": RDSBackend.restore_db_cluster_to_point_in_time,
    "describe_db_clusters": RDSBackend.describe_db_clusters,
    "delete_db_cluster": RDSBackend.delete_db_cluster,
    "cluster_status": DBCluster.status,
    "member_storage_type": DBInstanceClustered.storage_type,
}


def patched_create_db_instance(self, db_kwargs):
    member_of = db_kwargs.get("db_cluster_identifier")
    if member_of:
        db_kwargs["db_cluster_identifier"] = member_of = str(member_of).lower()
        if TWIN is not None and TWIN.enabled:
            check_new_member(self, db_kwargs)
    database = ORIG["create_db_instance"](self, db_kwargs)
    # moto gives every instance the same DbiResourceId; real RDS gives each its own.
    database.dbi_resource_id = new_dbi_resource_id()
    if TWIN is not None:
        TWIN.rds_backends.add(self)
        if member_of and TWIN.enabled:
            TWIN.start_member(self, database)
    return database


def as_datetime(value):
    if isinstance(value, datetime.datetime):
        return utc(value)
    text = str(value).strip()
    try:
        return utc(datetime.datetime.fromisoformat(text.replace("Z", "+00:00")))
    except ValueError:
        return datetime.datetime.fromtimestamp(float(text), datetime.timezone.utc)


def restore_window(database, now):
    """(earliest, latest) restorable time of an instance with backups."""
    created = utc(database.instance_create_time)
    return max(created, now - datetime.timedelta(days=database.backup_retention_period)), now


def check_restore_source(backend, source_db_identifier, overrides):
    """What real RDS refuses and moto lets through."""
    if not source_db_identifier:
        raise RDSClientError("InvalidParameterValue",
                             "The parameter SourceDBInstanceIdentifier must be provided.")
    source = backend.describe_db_instances(source_db_identifier)[0]  # NotFound while invisible
    if source.status in ("creating", "deleting"):
        raise RDSClientError("InvalidDBInstanceState",
                             f"Instance {source.db_instance_identifier} is currently {source.status}.")
    if not source.backup_retention_period:
        raise RDSClientError("PointInTimeRestoreNotEnabled",
                             f"Point-in-time restore is not enabled for {source.db_instance_identifier}: "
                             f"its backup retention period is 0.")
    restore_time = overrides.get("restore_time")
    latest = overrides.get("use_latest_restorable_time") in (True, "true")
    if restore_time and latest:
        raise InvalidParameterCombination(
            "Cannot specify both RestoreTime and UseLatestRestorableTime.")
    if not restore_time and not latest:
        raise InvalidParameterCombination("Either RestoreTime or UseLatestRestorableTime must be specified.")
    if restore_time:
        when = as_datetime(restore_time)
        earliest, latest_time = restore_window(source, datetime.datetime.now(datetime.timezone.utc))
        if not earliest <= when <= latest_time:
            raise RDSClientError(
                "InvalidRestoreFault",
                f"Restore time {iso(when)} is outside the restorable window of "
                f"{source.db_instance_identifier}: {iso(earliest)} to {iso(latest_time)}.")


def patched_restore(self, source_db_identifier, target_db_identifier, overrides):
    if TWIN is not None and TWIN.enabled:
        check_restore_source(self, source_db_identifier, overrides)
    database = ORIG["restore"](self, source_db_identifier, target_db_identifier, overrides)
    # moto copies the source's values and then applies only truthy overrides, so
    # BackupRetentionPeriod=0 and DeletionProtection=false are lost, and with no
    # VpcSecurityGroupIds the restored instance gets the source's groups. Real RDS takes what
    # the request sent, and with no groups the VPC's `default` group.
    if overrides.get("backup_retention_period") is not None:
        database.backup_retention_period = int(overrides["backup_retention_period"])
    # Not copied from the source: off unless the request asks for it.
    database.deletion_protection = overrides.get("deletion_protection") in (True, "true")
    if overrides.get("ca_certificate_identifier"):
        database.ca_certificate_identifier = overrides["ca_certificate_identifier"]
    groups = list(overrides.get("vpc_security_group_ids") or [])
    if not groups:
        ec2 = ec2_backends[self.account_id][self.region_name]
        subnet_group = getattr(database, "db_subnet_group", None)
        vpc_id = getattr(subnet_group, "vpc_id", None) or ec2.default_vpc.id
        groups = [ec2.get_default_security_group(vpc_id).id]
    database.vpc_security_group_ids = groups
    if TWIN is not None and TWIN.enabled:
        TWIN.start_restore(self, database,
                           skip_backing_up=overrides.get("backup_retention_period") in (0, "0"))
    return database


def patched_describe_db_instances(self, db_instance_identifier=None, filters=None):
    databases = ORIG["describe_db_instances"](self, db_instance_identifier, filters)
    if TWIN is None or not TWIN.enabled:
        return databases
    visible = [db for db in databases if not TWIN.invisible(self, db.db_instance_identifier)]
    if any(TWIN.phase(self, db.db_instance_identifier) for db in visible):
        TWIN.count("rewritten")
    if db_instance_identifier and not visible:
        raise DBInstanceNotFoundError(db_instance_identifier)
    return visible


def patched_modify_db_instance(self, db_instance_identifier, db_kwargs):
    if TWIN is None or not TWIN.enabled:
        return ORIG["modify_db_instance"](self, db_instance_identifier, db_kwargs)
    database = self.describe_db_instances(db_instance_identifier)[0]
    if database.status != "available":
        TWIN.count("rejected")
        raise RDSClientError("InvalidDBInstanceState",
                             f"Database instance is not in available state "
                             f"(DBInstance {database.db_instance_identifier} is {database.status}).")
    before = list(database.vpc_security_group_ids)
    database = ORIG["modify_db_instance"](self, db_instance_identifier, db_kwargs)
    TWIN.start_modify(self, database, before)
    return database


def patched_delete_db_instance(self, db_instance_identifier, final_db_snapshot_identifier=None,
                               skip_final_snapshot=False, delete_automated_backups=True, **_):
    """Accepts the delete, as moto would, but leaves the instance `deleting` for a while."""
    if TWIN is None or not TWIN.enabled:
        return ORIG["delete_db_instance"](self, db_instance_identifier, final_db_snapshot_identifier,
                                          skip_final_snapshot, delete_automated_backups)
    self._validate_db_identifier(db_instance_identifier)
    database = self.describe_db_instances(db_instance_identifier)[0]  # NotFound if unknown
    if database.status == "deleting":
        TWIN.count("rejected")
        raise RDSClientError("InvalidDBInstanceState",
                             f"Instance {database.db_instance_identifier} is already being deleted.")
    if database.status != "available":
        TWIN.count("rejected")
        raise RDSClientError("InvalidDBInstanceState",
                             f"Instance {database.db_instance_identifier} is currently "
                             f"{database.status} and cannot be deleted until it is available.")
    if database.deletion_protection:
        raise InvalidParameterCombination(
            "Cannot delete protected DB Instance, please disable deletion protection and try again.")
    cluster = self.clusters.get(getattr(database, "db_cluster_identifier", None) or "")
    if cluster is not None:  # a cluster member: no snapshot of its own, the cluster has them
        if is_multi_az(cluster):
            TWIN.count("rejected")
            raise InvalidParameterCombination(
                f"Instance {database.db_instance_identifier} belongs to the Multi-AZ DB cluster "
                f"{cluster.db_cluster_identifier}; delete the cluster instead.")
        if final_db_snapshot_identifier:
            raise InvalidParameterCombination(
                "FinalDBSnapshotIdentifier can not be specified when deleting a clustered instance.")
        TWIN.start_delete(self, database, delete_automated_backups)
        return database
    if not final_db_snapshot_identifier and skip_final_snapshot in (None, False, "false"):
        raise InvalidParameterCombination(
            "FinalDBSnapshotIdentifier is required unless SkipFinalSnapshot is specified.")
    if final_db_snapshot_identifier and not skip_final_snapshot:
        self.create_db_snapshot(database.db_instance_identifier, final_db_snapshot_identifier,
                                snapshot_type="manual")
    TWIN.start_delete(self, database, delete_automated_backups)
    return database


def patched_endpoint(self):
    # Real RDS has no Endpoint element until the instance has been created.
    if self.status == "creating":
        return None
    return ORIG["endpoint"].fget(self)


def patched_memberships(self):
    if TWIN is None:
        return ORIG["memberships"].fget(self)
    return TWIN.memberships(self)


def patched_create_security_group(self, *args, **kwargs):
    group = ORIG["create_security_group"](self, *args, **kwargs)
    if TWIN is not None and TWIN.enabled and TWIN.current_action == "CreateSecurityGroup":
        TWIN.group_created[group.id] = time.monotonic()
    return group


def patched_describe_security_groups(self, group_ids=None, groupnames=None, filters=None):
    groups = ORIG["describe_security_groups"](self, group_ids, groupnames, filters)
    if TWIN is None or not TWIN.enabled:
        return groups
    return [g for g in groups if not TWIN.group_invisible(g.id)]


# -- DB clusters (Aurora MySQL and Multi-AZ DB clusters) ------------------------------------

MULTI_AZ_MEMBERS = 3  # one writer, two readable standbys: RDS creates them itself


def is_multi_az(cluster):
    """A Multi-AZ DB cluster (engine mysql or postgres) rather than an Aurora one."""
    return not str(cluster.engine).startswith("aurora") and bool(cluster.db_cluster_instance_class)


def refused(code, message):
    if TWIN is not None:
        TWIN.count("rejected")
    return RDSClientError(code, message)


def default_group_of(backend, subnet_group_name):
    """The `default` security group of the VPC of a DB subnet group (the default VPC's if none)."""
    ec2 = ec2_backends[backend.account_id][backend.region_name]
    subnet_group = backend.subnet_groups.get(subnet_group_name or "")
    vpc_id = getattr(subnet_group, "vpc_id", None) or ec2.default_vpc.id
    return ec2.get_default_security_group(vpc_id).id


def check_new_member(backend, db_kwargs):
    """What real RDS refuses for CreateDBInstance with DBClusterIdentifier, and moto lets through."""
    cluster = backend.describe_db_clusters(db_kwargs["db_cluster_identifier"])[0]  # NotFound while invisible
    ident = cluster.db_cluster_identifier
    if is_multi_az(cluster):
        raise refused("InvalidParameterCombination",
                      f"Cannot create a DB instance in the Multi-AZ DB cluster {ident}: RDS creates "
                      f"and manages the instances of a Multi-AZ DB cluster itself.")
    if cluster.status != "available":
        raise refused("InvalidDBClusterStateFault",
                      f"DB cluster {ident} is {cluster.status}: instances can be added only to an "
                      f"available DB cluster.")
    if (str(db_kwargs.get("db_instance_class")) == "db.serverless"
            and str(cluster.engine).startswith("aurora")
            and not cluster.serverless_v2_scaling_configuration):
        raise refused("InvalidParameterCombination",
                      f"Creating a db.serverless instance needs ServerlessV2ScalingConfiguration "
                      f"on DB cluster {ident}.")


def add_multi_az_members(backend, cluster):
    """RDS creates the instances of a Multi-AZ DB cluster itself; moto creates none."""
    ident = cluster.db_cluster_identifier
    subnet_group = cluster.db_subnet_group_name if cluster.db_subnet_group_name in backend.subnet_groups else None
    for n in range(1, MULTI_AZ_MEMBERS + 1):
        database = ORIG["create_db_instance"](backend, {
            "db_instance_identifier": f"{ident}-instance-{n}", "db_cluster_identifier": ident,
            "db_instance_class": cluster.db_cluster_instance_class, "engine": cluster.engine,
            "availability_zone": f"{backend.region_name}{'abc'[(n - 1) % 3]}",
            "db_subnet_group_name": subnet_group, "publicly_accessible": cluster.publicly_accessible,
            "port": cluster.port, "tags": list(cluster.tags or []), "promotion_tier": n})
        database.dbi_resource_id = new_dbi_resource_id()
        if TWIN is not None and TWIN.enabled:
            TWIN.start_member(backend, database)


def drop_automated_cluster_snapshots(backend, ident):
    """moto keeps a deleted cluster's automated snapshot, and then refuses a new cluster of the same
    name within the minute (its snapshot name is taken); real RDS deletes them with the cluster."""
    for name, snapshot in list(backend.cluster_snapshots.items()):
        if snapshot.snapshot_type == "automated" and snapshot.cluster.db_cluster_identifier == ident:
            del backend.cluster_snapshots[name]


def patched_create_db_cluster(self, kwargs):
    ident = kwargs["db_cluster_identifier"] = str(kwargs["db_cluster_identifier"]).lower()
    if ident in self.clusters:  # moto would silently replace it
        raise refused("DBClusterAlreadyExistsFault", f"DB cluster {ident} already exists.")
    drop_automated_cluster_snapshots(self, ident)
    cluster = ORIG["create_db_cluster"](self, kwargs)
    # moto leaves VpcSecurityGroups empty when none are sent; real RDS uses the VPC's default group.
    if not cluster.vpc_security_group_ids:
        cluster.vpc_security_group_ids = [default_group_of(self, cluster.db_subnet_group_name)]
    if not cluster.backtrack_window:
        cluster.backtrack_window = None  # real RDS leaves BacktrackWindow out when off
    if TWIN is not None:
        TWIN.rds_backends.add(self)
        if TWIN.enabled and TWIN.current_action == "CreateDBCluster":
            TWIN.start_cluster(self, cluster, invisible=False)
    if is_multi_az(cluster):
        add_multi_az_members(self, cluster)
    return cluster


def cluster_window(cluster, now):
    """(earliest, latest) restorable time of a cluster."""
    created = utc(cluster.cluster_create_time)
    days = int(cluster.backup_retention_period or 0)
    return max(created, now - datetime.timedelta(days=days)), now


def check_cluster_restore_source(backend, source_ident, restore_type, restore_to_time, use_latest):
    if not source_ident:
        raise refused("InvalidParameterValue",
                      "The parameter SourceDBClusterIdentifier must be provided.")
    source = backend.describe_db_clusters(source_ident)[0]  # NotFound while invisible
    if source.status != "available":
        raise refused("InvalidDBClusterStateFault",
                      f"DB cluster {source.db_cluster_identifier} is {source.status}; it must be "
                      f"available to be restored from.")
    latest = use_latest in (True, "true")
    if restore_to_time and latest:
        raise refused("InvalidParameterCombination",
                      "Cannot specify both RestoreToTime and UseLatestRestorableTime.")
    if restore_to_time and restore_type == "copy-on-write":
        raise refused("InvalidParameterCombination",
                      "RestoreToTime cannot be specified when RestoreType is copy-on-write: a clone "
                      "can only be of the latest restorable time.")
    if not restore_to_time and not latest:
        raise refused("InvalidParameterCombination",
                      "Either RestoreToTime or UseLatestRestorableTime must be specified.")
    if restore_type not in (None, "full-copy", "copy-on-write"):
        raise refused("InvalidParameterValue",
                      f"Invalid RestoreType {restore_type!r}: use full-copy or copy-on-write.")
    if restore_to_time:
        when = as_datetime(restore_to_time)
        earliest, latest_time = cluster_window(source, datetime.datetime.now(datetime.timezone.utc))
        if not earliest <= when <= latest_time:
            raise refused("InvalidRestoreFault",
                          f"Restore time {iso(when)} is outside the restorable window of DB cluster "
                          f"{source.db_cluster_identifier}: {iso(earliest)} to {iso(latest_time)}.")


def patched_restore_cluster(self, db_cluster_identifier, source_db_cluster_identifier=None,
                            restore_type="full-copy", restore_to_time=None,
                            use_latest_restorable_time=False, **overrides):
    enabled = TWIN is not None and TWIN.enabled
    if enabled:
        check_cluster_restore_source(self, source_db_cluster_identifier, restore_type,
                                     restore_to_time, use_latest_restorable_time)
    # moto copies the source's tags, DeletionProtection and BacktrackWindow; real RDS takes what
    # the request sent (DeletionProtection off and no backtracking unless asked).
    overrides.setdefault("tags", [])
    overrides["deletion_protection"] = overrides.get("deletion_protection") in (True, "true")
    overrides.setdefault("backtrack_window", 0)
    # (the new cluster, and a Multi-AZ DB cluster's instances, come from patched_create_db_cluster)
    cluster = ORIG["restore_cluster"](
        self, db_cluster_identifier, source_db_cluster_identifier,
        restore_type=restore_type or "full-copy", restore_to_time=restore_to_time,
        use_latest_restorable_time=use_latest_restorable_time, **overrides)
    if enabled:
        TWIN.start_cluster(self, cluster, invisible=True)
    return cluster


def patched_describe_db_clusters(self, db_cluster_identifier=None, filters=None):
    clusters = ORIG["describe_db_clusters"](self, db_cluster_identifier, filters)
    if TWIN is None or not TWIN.enabled:
        return clusters
    visible = [c for c in clusters if TWIN.cluster_phase(self, c.db_cluster_identifier) != "invisible"]
    if any(TWIN.cluster_phase(self, c.db_cluster_identifier) for c in visible):
        TWIN.count("rewritten")
    if db_cluster_identifier and not visible:
        raise DBClusterNotFoundError(db_cluster_identifier)
    return visible


def patched_delete_db_cluster(self, cluster_identifier, snapshot_name=None, skip_final_snapshot=None):
    if TWIN is None or not TWIN.enabled:
        return ORIG["delete_db_cluster"](self, cluster_identifier, snapshot_name)
    cluster = self.describe_db_clusters(cluster_identifier)[0]  # NotFound if unknown or invisible
    ident = cluster.db_cluster_identifier
    if cluster.status == "deleting":
        raise refused("InvalidDBClusterStateFault", f"DB cluster {ident} is already being deleted.")
    if cluster.status != "available":
        raise refused("InvalidDBClusterStateFault",
                      f"DB cluster {ident} is currently {cluster.status} and cannot be deleted "
                      f"until it is available.")
    if cluster.deletion_protection:
        raise InvalidParameterCombination(
            "Cannot delete protected Cluster, please disable deletion protection and try again.")
    members = [db for db in self.databases.values()
               if getattr(db, "db_cluster_identifier", None) == ident]
    if not is_multi_az(cluster) and any(db.status != "deleting" for db in members):
        raise refused("InvalidDBClusterStateFault",
                      "Cluster cannot be deleted, it still contains DB instances in non-deleting state.")
    if not snapshot_name and skip_final_snapshot in (None, False, "false"):
        raise InvalidParameterCombination(
            "FinalDBSnapshotIdentifier is required unless SkipFinalSnapshot is specified.")
    if snapshot_name and skip_final_snapshot in (None, False, "false"):
        self.create_db_cluster_snapshot(ident, snapshot_name)
    if is_multi_az(cluster):  # RDS deletes a Multi-AZ DB cluster's instances with it
        for db in members:
            if db.status != "deleting":
                TWIN.start_delete(self, db, True)
    TWIN.start_cluster_delete(self, cluster)
    return cluster


def response_delete_db_cluster(self):
    """moto's DeleteDBCluster drops SkipFinalSnapshot; pass it on."""
    cluster = self.backend.delete_db_cluster(
        cluster_identifier=self.params.get("DBClusterIdentifier"),
        snapshot_name=self.params.get("FinalDBSnapshotIdentifier"),
        skip_final_snapshot=self.params.get("SkipFinalSnapshot"))
    return ActionResult({"DBCluster": cluster})


def cluster_status(self):
    # moto answers `creating` once and then `available`; the twin's clock decides instead.
    if TWIN is not None and TWIN.enabled:
        if self._status == "creating" and TWIN.cluster_phase(self.backend, self.db_cluster_identifier) is None:
            self._status = "available"  # a cluster the twin does not time (e.g. from a snapshot)
        return self._status
    return ORIG["cluster_status"].fget(self)


def cluster_earliest_restorable_time(self):
    now = datetime.datetime.now(datetime.timezone.utc)
    return cluster_window(self, now)[0].replace(tzinfo=None)


def member_storage_type(self):
    # moto says `aurora` for every cluster member; a Multi-AZ DB cluster's have the cluster's.
    if is_multi_az(self.cluster):
        return self.cluster.storage_type
    return ORIG["member_storage_type"].fget(self)


def install_patches():
    RDSBackend.create_db_instance = patched_create_db_instance
    RDSBackend.restore_db_instance_to_point_in_time = patched_restore
    RDSBackend.describe_db_instances = patched_describe_db_instances
    RDSBackend.modify_db_instance = patched_modify_db_instance
    RDSBackend.delete_db_instance = patched_delete_db_instance
    DBInstance.endpoint = property(patched_endpoint)
    DBInstance.vpc_security_group_membership_list = property(patched_memberships)
    SecurityGroupBackend.create_security_group = patched_create_security_group
    SecurityGroupBackend.describe_security_groups = patched_describe_security_groups
    RDSBackend.create_db_cluster = patched_create_db_cluster
    RDSBackend.restore_db_cluster_to_point_in_time = patched_restore_cluster
    RDSBackend.describe_db_clusters = patched_describe_db_clusters
    RDSBackend.delete_db_cluster = patched_delete_db_cluster
    RDSResponse.delete_db_cluster = response_delete_db_cluster
    DBCluster.status = property(cluster_status, ORIG["cluster_status"].fset)
    DBCluster.earliest_restorable_time = property(cluster_earliest_restorable_time,
                                                  lambda self, value: None)
    DBInstanceClustered.storage_type = property(member_storage_type,
                                                ORIG["member_storage_type"].fset)


# ---------------------------------------------------------------------------------------------

class Tracked:
    """An instance going through timed states: phases [(status, until)], then `done`."""

    def __init__(self, backend, ident, phases, done):
        self.backend = backend
        self.ident = ident
        self.phases = phases
        self.done = done  # "available" or "delete"
        self.adding = []
        self.removing = []
        self.delete_automated_backups = True


class Twin:
    """WSGI middleware in front of moto, and the clock of the states it adds."""

    def __init__(self, app, settings):
        self.app = app
        # One lock for the twin's state *and* every call into moto: moto is not thread-safe,
        # and the background thread finishes deletions inside moto.
        self.lock = threading.RLock()
        self.settings = {**DEFAULTS, "lose": {}, "retained_backups": {}, "fail": {}}
        self.settings.update(settings)
        self.counters = dict.fromkeys(COUNTERS, 0)
        self.enabled = False  # switched on once seeding is done
        self.tracked = {}  # (region, ident) -> Tracked
        self.cluster_tracked = {}  # (region, cluster ident) -> Tracked
        self.rds_backends = set()
        self.group_created = {}  # sg id -> monotonic time of its CreateSecurityGroup
        self.group_released = {}  # sg id -> monotonic time the last RDS instance let it go
        self.retained_ids = {}  # ident -> DbiResourceId of its retained (older) instance
        self.current_action = None
        self.log = collections.deque(maxlen=LOG_LIMIT)
        self.seq = 0

    # -- the clock ----------------------------------------------------------------------------

    def count(self, name):
        self.counters[name] += 1

    def phase(self, backend, ident):
        record = self.tracked.get((backend.region_name, ident.lower()))
        if record is None:
            return None
        now = time.monotonic()
        for status, until in record.phases:
            if now < until:
                return status
        return None

    def invisible(self, backend, ident):
        return self.phase(backend, ident) == "invisible"

    @staticmethod
    def timeline(phases):
        timeline, t = [], time.monotonic()
        for status, seconds in phases:
            t += seconds
            timeline.append((status, t))
        return timeline

    def track(self, backend, database, phases, done):
        timeline = self.timeline(phases)
        record = Tracked(backend, database.db_instance_identifier, timeline, done)
        self.tracked[(backend.region_name, record.ident)] = record
        self.rds_backends.add(backend)
        database.status = "creating" if timeline[0][0] == "invisible" else timeline[0][0]
        return record

    def cluster_phase(self, backend, ident):
        record = self.cluster_tracked.get((backend.region_name, str(ident).lower()))
        if record is None:
            return None
        now = time.monotonic()
        return next((status for status, until in record.phases if now < until), None)

    def track_cluster(self, backend, cluster, phases, done):
        timeline = self.timeline(phases)
        record = Tracked(backend, cluster.db_cluster_identifier, timeline, done)
        self.cluster_tracked[(backend.region_name, record.ident)] = record
        self.rds_backends.add(backend)
        cluster.status = "creating" if timeline[0][0] == "invisible" else timeline[0][0]
        return record

    def start_cluster(self, backend, cluster, invisible):
        """A restored cluster: unknown, then `creating`; a created one: `creating` at once."""
        s = self.settings
        phases = [("invisible", s["restore_invisible_seconds"])] if invisible else []
        self.track_cluster(backend, cluster, phases + [("creating", s["creating_seconds"])], "available")

    def start_cluster_delete(self, backend, cluster):
        self.track_cluster(backend, cluster, [("deleting", self.settings["deleting_seconds"])], "delete")

    def start_member(self, backend, database):
        """A cluster's instance: unknown, `creating`, then `available` (its backups are the cluster's)."""
        s = self.settings
        self.track(backend, database, [("invisible", s["restore_invisible_seconds"]),
                                       ("creating", s["creating_seconds"])], "available")

    def finish_cluster_delete(self, backend, ident, now):
        cluster = backend.clusters.get(ident)
        groups = list(cluster.vpc_security_group_ids)
        for db_ident, database in list(backend.databases.items()):
            if getattr(database, "db_cluster_identifier", None) == ident:
                self.tracked.pop((backend.region_name, db_ident), None)
                ORIG["delete_db_instance"](backend, db_ident, None, True, True)
        ORIG["delete_db_cluster"](backend, ident, None)
        drop_automated_cluster_snapshots(backend, ident)
        for g in groups:
            self.group_released[g] = now

    def start_restore(self, backend, database, skip_backing_up):
        s = self.settings
        phases = [("invisible", s["restore_invisible_seconds"]), ("creating", s["creating_seconds"])]
        if not skip_backing_up:
            phases.append(("backing-up", s["backing_up_seconds"]))
        self.track(backend, database, phases, "available")

    def start_modify(self, backend, database, before):
        after = list(database.vpc_security_group_ids)
        record = self.track(backend, database, [("modifying", self.settings["modifying_seconds"])],
                            "available")
        record.adding = [g for g in after if g not in before]
        record.removing = [g for g in before if g not in after]

    def start_delete(self, backend, database, delete_automated_backups):
        record = self.track(backend, database, [("deleting", self.settings["deleting_seconds"])],
                            "delete")
        record.delete_automated_backups = delete_automated_backups

    def tick(self):
        """Move every tracked instance on to the state its clock says; finish what is due."""
        with self.lock:
            now = time.monotonic()
            for key, record in list(self.tracked.items()):
                current = next((st for st, until in record.phases if now < until), None)
                database = record.backend.databases.get(record.ident)
                if database is None:  # gone from moto some other way
                    del self.tracked[key]
                    continue
                if current is not None:
                    database.status = "creating" if current == "invisible" else current
                    continue
                del self.tracked[key]
                if record.done == "delete":
                    groups = list(database.vpc_security_group_ids)
                    ORIG["delete_db_instance"](record.backend, record.ident, None, True,
                                               record.delete_automated_backups)
                    for g in groups:
                        self.group_released[g] = now
                else:
                    database.status = "available"
                    for g in record.removing:
                        self.group_released[g] = now
            for key, record in list(self.cluster_tracked.items()):
                current = next((st for st, until in record.phases if now < until), None)
                cluster = record.backend.clusters.get(record.ident)
                if cluster is None:
                    del self.cluster_tracked[key]
                    continue
                if current is not None:
                    cluster.status = "creating" if current == "invisible" else current
                    continue
                del self.cluster_tracked[key]
                if record.done == "delete":
                    self.finish_cluster_delete(record.backend, record.ident, now)
                else:
                    cluster.status = "available"
            linger = self.settings["dependency_linger_seconds"]
            for g, t in list(self.group_released.items()):
                if now - t >= linger:
                    del self.group_released[g]
            invisible_for = self.settings["group_invisible_seconds"]
            for g, t in list(self.group_created.items()):
                if now - t >= invisible_for:
                    del self.group_created[g]

    def ticker(self):
        while True:
            time.sleep(TICK_SECONDS)
            if self.enabled:
                try:
                    self.tick()
                except Exception as err:  # noqa: BLE001 - keep the clock going
                    print(f"aws_twin: tick failed: {err!r}", file=sys.stderr, flush=True)

    # -- security groups ----------------------------------------------------------------------

    def memberships(self, database):
        record = self.tracked.get((database.region, database.db_instance_identifier))
        adding = record.adding if record else []
        removing = record.removing if record else []
        groups = [{"VpcSecurityGroupId": g, "Status": "adding" if g in adding else "active"}
                  for g in database.vpc_security_group_ids]
        groups += [{"VpcSecurityGroupId": g, "Status": "removing"}
                   for g in removing if g not in database.vpc_security_group_ids]
        return groups

    def group_invisible(self, group_id):
        t = self.group_created.get(group_id)
        return t is not None and time.monotonic() - t < self.settings["group_invisible_seconds"]

    def group_holders(self, group_id):
        holders = []
        for backend in list(self.rds_backends):
            for ident, database in list(backend.databases.items()):
                record = self.tracked.get((backend.region_name, ident))
                held = list(database.vpc_security_group_ids) + (record.removing if record else [])
                if group_id in held:
                    holders.append(ident)
            for ident, cluster in list(backend.clusters.items()):  # `deleting` ones included
                if group_id in cluster.vpc_security_group_ids:
                    holders.append("cluster " + ident)
        return holders

    def group_depended_on(self, group_id):
        if self.group_holders(group_id):
            return True
        t = self.group_released.get(group_id)
        return t is not None and time.monotonic() - t < self.settings["dependency_linger_seconds"]

    # -- the middleware -----------------------------------------------------------------------

    def __call__(self, environ, start_response):
        path = environ.get("PATH_INFO", "")
        if path in ("/_twin", "/_faults"):
            return self.control(environ, start_response)
        if path == "/_twin/requests":
            with self.lock:
                body = json.dumps(list(self.log)).encode()
            return self.respond(start_response, "200 OK", body, "application/json")
        if path == "/_twin/requests/clear" and environ["REQUEST_METHOD"] == "POST":
            with self.lock:
                self.log.clear()
            return self.respond(start_response, "200 OK", b'{"cleared": true}', "application/json")
        if path.startswith("/moto-api"):  # moto's dashboard/reset API: no faults
            with self.lock:
                if path.startswith("/moto-api/reset"):  # moto forgets everything: so does the twin
                    self.tracked.clear()
                    self.cluster_tracked.clear()
                    self.rds_backends.clear()
                    self.group_created.clear()
                    self.group_released.clear()
                return self.app(environ, start_response)

        form = self.read_form(environ)
        action = form.get("Action", [""])[0]
        region, service = credential_scope(environ)  # "rds", "ec2", ... (None if unsigned)
        with self.lock:
            if self.enabled:
                self.tick()
            status, headers, body, lost = self.handle(environ, form, action, region, service)
            if self.enabled:
                self.record(service, action, form, status, lost)
        headers = [(k, v) for k, v in headers if k.lower() != "content-length"]
        headers.append(("Content-Length", str(len(body))))
        if not any(k.lower() == "x-amzn-requestid" for k, _ in headers):
            # Real RDS and EC2 name every answer's request id in this header too.
            found = REQUEST_ID.search(body)
            headers.append(("x-amzn-RequestId", found.group(1).decode() if found else str(uuid.uuid4())))
        start_response(status, headers)
        return [body]

    def handle(self, environ, form, action, region, service):
        if not self.enabled:
            return self.call_moto(environ) + (False,)
        fault = self.pick_fault()
        xml = [("Content-Type", "text/xml")]
        if fault == "throttled":
            if service == "ec2":
                body = error_body(service, "RequestLimitExceeded", "Request limit exceeded.", "Sender")
            else:
                body = error_body(service, "Throttling", "Rate exceeded", "Sender")
            return "400 Bad Request", xml, body, False
        if fault == "errored":
            body = error_body(service, "ServiceUnavailable",
                              "Service is unavailable. Please try again later.", "Receiver")
            return "503 Service Unavailable", xml, body, False

        failure = self.settings["fail"].get(action)
        if failure:  # an error on demand (AccessDenied, a quota...), without reaching moto
            code, http, message = failure
            body = error_body(service, code, message, "Sender" if http < 500 else "Receiver")
            return f"{http} {HTTP_REASONS.get(http, 'Error')}", xml, body, False

        self.current_action = action
        try:
            answer = self.answer_here(form, action, region, service)
            status, headers, body = answer if answer else self.call_moto(environ)
        finally:
            self.current_action = None

        lose = self.settings["lose"]
        if lose.get(action, 0) > 0:
            lose[action] -= 1
            self.count("lost")
            body = error_body(service, "ServiceUnavailable",
                              "Service is unavailable. Please try again later.", "Receiver")
            return "503 Service Unavailable", xml, body, True
        return status, headers, body, False

    def answer_here(self, form, action, region, service):
        """The answers the twin gives itself instead of moto's, or None."""
        xml = [("Content-Type", "text/xml")]
        if service == "ec2":
            ids = [v[0] for k, v in form.items() if k == "GroupId" or re.fullmatch(r"GroupId\.\d+", k)]
            if action in ("AuthorizeSecurityGroupIngress", "RevokeSecurityGroupIngress",
                          "AuthorizeSecurityGroupEgress", "RevokeSecurityGroupEgress",
                          "DeleteSecurityGroup", "DescribeSecurityGroups", "ModifySecurityGroupRules"):
                for group_id in ids:
                    if self.group_invisible(group_id):
                        self.count("rejected")
                        return ("400 Bad Request", xml, error_body(
                            "ec2", "InvalidGroup.NotFound",
                            f"The security group '{group_id}' does not exist", "Sender"))
            if action == "DeleteSecurityGroup":
                group_id = form.get("GroupId", [None])[0]
                if group_id is None and form.get("GroupName"):
                    ec2 = ec2_backends[DEFAULT_ACCOUNT_ID][region or "us-east-1"]
                    group = ec2.get_security_group_from_name(form["GroupName"][0])
                    group_id = group.id if group else None
                if group_id and self.group_depended_on(group_id):
                    self.count("rejected")
                    return ("400 Bad Request", xml, error_body(
                        "ec2", "DependencyViolation",
                        f"resource {group_id} has a dependent object", "Sender"))
        if service == "rds" and action == "DescribeDBInstanceAutomatedBackups":
            return self.automated_backups(form, region or "us-east-1")
        return None

    def call_moto(self, environ):
        captured = {}
        chunks = []

        def capture(status, headers, exc_info=None):
            captured.update(status=status, headers=headers)
            return chunks.append  # the legacy write() callable

        result = self.app(environ, capture)
        try:
            chunks.extend(result)
        finally:
            if hasattr(result, "close"):
                result.close()
        return captured["status"], captured["headers"], b"".join(chunks)

    def read_form(self, environ):
        """Parse a form-encoded body, leaving an unread copy in wsgi.input for moto."""
        try:
            length = int(environ.get("CONTENT_LENGTH") or 0)
        except ValueError:
            length = 0
        body = environ["wsgi.input"].read(length) if length > 0 else b""
        environ["wsgi.input"] = io.BytesIO(body)
        environ["CONTENT_LENGTH"] = str(len(body))
        if not environ.get("CONTENT_TYPE", "").startswith("application/x-www-form-urlencoded"):
            return {}
        return urllib.parse.parse_qs(body.decode("utf-8", "replace"), keep_blank_values=True)

    def pick_fault(self):
        self.counters["requests"] += 1
        n = self.counters["requests"]
        for fault, setting in (("throttled", "throttle_every"), ("errored", "server_error_every")):
            every = self.settings[setting]
            if every and n % every == 0:
                self.counters[fault] += 1
                return fault
        return None

    def record(self, service, action, form, status, lost):
        self.seq += 1
        params = {}
        for key, values in form.items():
            value = values[0] if len(values) == 1 else values
            params[key] = "***" if SECRET_FIELD.search(key) else value
        self.log.append({"seq": self.seq, "time": round(time.time(), 3), "service": service,
                         "action": action, "params": params, "status": int(status.split()[0]),
                         "lost": lost})

    # -- DescribeDBInstanceAutomatedBackups ---------------------------------------------------

    def automated_backups(self, form, region):
        backend = rds_backends[DEFAULT_ACCOUNT_ID][region]
        now = datetime.datetime.now(datetime.timezone.utc)
        entries = []
        for ident, database in sorted(backend.databases.items()):
            if database.status == "creating" or not database.backup_retention_period:
                continue  # no backup yet, or none kept
            if getattr(database, "db_cluster_identifier", None):
                continue  # a cluster member: the backups are the cluster's
            earliest, latest = restore_window(database, now)
            entries.append(self.backup_entry(backend, database, ident, database.dbi_resource_id,
                                             "active", earliest, latest,
                                             utc(database.instance_create_time)))
        for n, (ident, days) in enumerate(sorted(self.settings["retained_backups"].items()), 1):
            resource_id = self.retained_ids.setdefault(
                ident, "db-RETAINEDOLDERINSTANCE" + f"{n:04d}")
            earliest = now - datetime.timedelta(days=days)
            latest = now - datetime.timedelta(days=max(0, days - 10))
            entries.append(self.backup_entry(backend, backend.databases.get(ident), ident,
                                             resource_id, "retained", earliest, latest,
                                             earliest - datetime.timedelta(days=30), days))

        wanted_ident = form.get("DBInstanceIdentifier", [None])[0]
        wanted_dbi = form.get("DbiResourceId", [None])[0]
        filters = {}
        for key, values in form.items():
            match = re.fullmatch(r"Filters\.Filter\.(\d+)\.Name", key)
            if match:
                prefix = f"Filters.Filter.{match.group(1)}.Values.Value."
                filters[values[0]] = [v[0] for k, v in form.items() if k.startswith(prefix)]
        selected = []
        for entry in entries:
            if wanted_ident and entry["DBInstanceIdentifier"] != wanted_ident.lower():
                continue
            if wanted_dbi and entry["DbiResourceId"] != wanted_dbi:
                continue
            if "db-instance-id" in filters and not (
                    {entry["DBInstanceIdentifier"], entry["DBInstanceArn"]} & set(filters["db-instance-id"])):
                continue
            if "dbi-resource-id" in filters and entry["DbiResourceId"] not in filters["dbi-resource-id"]:
                continue
            if "status" in filters and entry["Status"] not in filters["status"]:
                continue
            selected.append(entry)
        if (wanted_ident or wanted_dbi) and not selected:
            return ("404 Not Found", [("Content-Type", "text/xml")], error_body(
                "rds", "DBInstanceAutomatedBackupNotFound",
                f"No automated backup found for {wanted_ident or wanted_dbi}.", "Sender"))

        def element(name, value):
            if isinstance(value, dict):
                inner = "".join(element(k, v) for k, v in value.items())
            elif isinstance(value, bool):
                inner = "true" if value else "false"
            else:
                inner = escape(str(value))
            return f"<{name}>{inner}</{name}>"

        items = "".join(element("DBInstanceAutomatedBackup", e) for e in selected)
        body = (f'<DescribeDBInstanceAutomatedBackupsResponse xmlns="{RDS_XMLNS}">'
                f"<DescribeDBInstanceAutomatedBackupsResult>"
                f"<DBInstanceAutomatedBackups>{items}</DBInstanceAutomatedBackups>"
                f"</DescribeDBInstanceAutomatedBackupsResult>"
                f"<ResponseMetadata><RequestId>{uuid.uuid4()}</RequestId></ResponseMetadata>"
                f"</DescribeDBInstanceAutomatedBackupsResponse>").encode()
        return "200 OK", [("Content-Type", "text/xml")], body

    @staticmethod
    def backup_entry(backend, database, ident, resource_id, status, earliest, latest, created,
                     retention=None):
        arn = f"arn:aws:rds:{backend.region_name}:{backend.account_id}"
        get = (lambda attr, default: getattr(database, attr, default) or default)
        return {
            "DBInstanceArn": f"{arn}:db:{ident}",
            "DbiResourceId": resource_id,
            "Region": backend.region_name,
            "DBInstanceIdentifier": ident,
            "RestoreWindow": {"EarliestTime": iso(earliest), "LatestTime": iso(latest)},
            "AllocatedStorage": get("allocated_storage", 20),
            "Status": status,
            "Port": get("port", 3306),
            "InstanceCreateTime": iso(created),
            "MasterUsername": get("master_username", "admin"),
            "Engine": get("engine", "mysql"),
            "EngineVersion": get("engine_version", "8.0.35"),
            "LicenseModel": get("license_model", "general-public-license"),
            "Encrypted": bool(get("storage_encrypted", False)),
            "StorageType": get("storage_type", "gp2"),
            "BackupRetentionPeriod": retention if retention is not None
            else get("backup_retention_period", 1),
            "DBInstanceAutomatedBackupsArn": f"{arn}:auto-backup:ab-"
            + hashlib.sha1(resource_id.encode()).hexdigest()[:26],
        }

    # -- control ------------------------------------------------------------------------------

    def state(self):
        now = time.monotonic()
        instances, pending = {}, {}
        for backend in list(self.rds_backends):
            for ident, database in list(backend.databases.items()):
                instances[ident] = self.phase(backend, ident) or database.status
        for record in self.tracked.values():
            if record.done == "delete":
                pending[record.ident] = round(max(0.0, record.phases[-1][1] - now), 3)
        clusters, pending_clusters = {}, {}
        for backend in list(self.rds_backends):
            for ident, cluster in list(backend.clusters.items()):
                clusters[ident] = self.cluster_phase(backend, ident) or cluster._status
        for record in self.cluster_tracked.values():
            if record.done == "delete":
                pending_clusters[record.ident] = round(max(0.0, record.phases[-1][1] - now), 3)
        return {**self.settings, **self.counters, "counters": dict(self.counters),
                "seeded_and_enabled": self.enabled, "pid": os.getpid(),
                "instances": instances, "pending_deletions": pending,
                "clusters": clusters, "pending_cluster_deletions": pending_clusters,
                "invisible_groups": sorted(g for g in self.group_created if self.group_invisible(g)),
                "lingering_groups": sorted(self.group_released)}

    def control(self, environ, start_response):
        if environ["REQUEST_METHOD"] == "POST":
            length = int(environ.get("CONTENT_LENGTH") or 0)
            try:
                changes = json.loads(environ["wsgi.input"].read(length) or b"{}")
                if not isinstance(changes, dict):
                    raise ValueError("the body must be a JSON object")
                unknown = set(changes) - set(SETTINGS)
                if unknown:
                    raise ValueError(f"unknown settings {sorted(unknown)}; known: {list(SETTINGS)}")
                for name, value in changes.items():
                    CHECKS[name](name, value)
            except ValueError as err:  # json.JSONDecodeError is a ValueError too
                return self.respond(start_response, "400 Bad Request",
                                    json.dumps({"error": str(err)}).encode(), "application/json")
            with self.lock:
                for name, value in changes.items():
                    self.settings[name] = dict(value) if isinstance(value, dict) else value
                self.counters = dict.fromkeys(COUNTERS, 0)
        with self.lock:
            if self.enabled:
                self.tick()
            body = json.dumps(self.state()).encode()
        return self.respond(start_response, "200 OK", body, "application/json")

    @staticmethod
    def respond(start_response, status, body, content_type="text/xml"):
        start_response(status, [("Content-Type", content_type), ("Content-Length", str(len(body)))])
        return [body]


def wait_until_serving(port, timeout=30):
    """Wait for *this* process to answer on the port (pid check: not some other server there)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/_twin", timeout=2) as resp:
                if json.load(resp).get("pid") == os.getpid():
                    return
        except (OSError, ValueError):
            pass
        time.sleep(0.1)
    raise TimeoutError(f"not serving on port {port} after {timeout}s")


def seed_clusters():
    """Beside prod-db: the Aurora MySQL cluster `prod-aurora` with its writer `prod-aurora-writer`,
    and the Multi-AZ DB cluster `prod-maz` (whose three instances the twin adds), each with a
    security group and a DB cluster parameter group of its own, in prod-db's subnet group."""
    import boto3
    kw = dict(region_name=os.environ.get("AWS_REGION", "us-east-1"),
              endpoint_url=os.environ["AWS_ENDPOINT_URL"],
              aws_access_key_id="sandbox", aws_secret_access_key="sandbox")
    rds, ec2 = boto3.client("rds", **kw), boto3.client("ec2", **kw)
    if any(c["DBClusterIdentifier"] == "prod-aurora" for c in rds.describe_db_clusters()["DBClusters"]):
        return
    vpc = ec2.describe_vpcs(Filters=[{"Name": "is-default", "Values": ["true"]}])["Vpcs"][0]["VpcId"]
    groups = {}
    for name in ("prod-aurora", "prod-maz"):
        groups[name] = ec2.create_security_group(
            GroupName=f"{name}-app-access", VpcId=vpc,
            Description=f"application servers to {name}")["GroupId"]
        ec2.authorize_security_group_ingress(GroupId=groups[name], IpPermissions=[{
            "IpProtocol": "tcp", "FromPort": 3306, "ToPort": 3306,
            "IpRanges": [{"CidrIp": "10.0.0.0/16", "Description": "app subnet"}]}])
    rds.create_db_cluster_parameter_group(
        DBClusterParameterGroupName="prod-aurora-cluster-params",
        DBParameterGroupFamily="aurora-mysql8.0", Description="prod-aurora cluster parameters")
    rds.create_db_cluster_parameter_group(
        DBClusterParameterGroupName="prod-maz-cluster-params",
        DBParameterGroupFamily="mysql8.0", Description="prod-maz cluster parameters")
    common = dict(MasterUsername="admin", MasterUserPassword="not-used-by-the-sandbox",
                  BackupRetentionPeriod=7, DBSubnetGroupName="prod-db-subnets", Port=3306)
    rds.create_db_cluster(
        DBClusterIdentifier="prod-aurora", Engine="aurora-mysql",
        EngineVersion="8.0.mysql_aurora.3.05.2", VpcSecurityGroupIds=[groups["prod-aurora"]],
        DBClusterParameterGroupName="prod-aurora-cluster-params",
        Tags=[{"Key": "team", "Value": "billing"}], **common)
    rds.create_db_instance(
        DBInstanceIdentifier="prod-aurora-writer", DBClusterIdentifier="prod-aurora",
        Engine="aurora-mysql", DBInstanceClass="db.r6g.large", PubliclyAccessible=False,
        Tags=[{"Key": "team", "Value": "billing"}])
    rds.create_db_cluster(
        DBClusterIdentifier="prod-maz", Engine="mysql", EngineVersion="8.0.35",
        DBClusterInstanceClass="db.m6gd.large", StorageType="io1", Iops=1000,
        AllocatedStorage=100, VpcSecurityGroupIds=[groups["prod-maz"]],
        DBClusterParameterGroupName="prod-maz-cluster-params", PubliclyAccessible=False,
        Tags=[{"Key": "team", "Value": "billing"}], **common)


def start_up(twin, port, seed):
    try:
        wait_until_serving(port)
        if seed:
            os.environ["AWS_ENDPOINT_URL"] = f"http://127.0.0.1:{port}"
            sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
            import sandbox_moto
            sandbox_moto.seed()
            seed_clusters()
            # A production instance has existed for a while: 19 days ago, after the older
            # instance of the same name whose backups are retained (restorable 30 to 20 days
            # ago), so its restorable window is its whole backup retention period.
            # The seeded clusters and their instances too; and all of it available at once.
            with twin.lock:
                then = (datetime.datetime.now(datetime.timezone.utc).replace(tzinfo=None)
                        - datetime.timedelta(days=SEEDED_AGE_DAYS))
                for backend in list(twin.rds_backends):
                    for database in backend.databases.values():
                        database.created = database.instance_create_time = then
                        database.status = "available"
                    for cluster in backend.clusters.values():
                        cluster.created = cluster.cluster_create_time = then
                        cluster.status = "available"
    except Exception as err:  # noqa: BLE001 - any failure here must end the process visibly
        print(f"aws_twin: start-up failed: {err!r}", file=sys.stderr, flush=True)
        os._exit(1)  # the main thread is inside run_simple; exit the whole process
    with twin.lock:
        twin.enabled = True
    print(f"ready {port}", flush=True)


def pairs(text):
    name, sep, n = text.partition("=")
    if not sep or not name:
        raise argparse.ArgumentTypeError(f"expected NAME=N, not {text!r}")
    try:
        return name, (float(n) if "." in n else int(n))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected NAME=N with N a number, not {text!r}") from None


def env_default(name, kind):
    value = os.environ.get(f"TWIN_{name.upper()}")
    if value is None:
        return DEFAULTS[name]
    try:
        return kind(value)
    except ValueError:
        sys.exit(f"aws_twin: TWIN_{name.upper()}={value!r} is not a number")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--seed", action="store_true",
                        help="create prod-db and friends (scripts/sandbox_moto.py), the "
                             "clusters prod-aurora and prod-maz, and a retained automated "
                             "backup of an older prod-db")
    parser.add_argument("--throttle-every", type=int, metavar="K",
                        default=env_default("throttle_every", int))
    parser.add_argument("--server-error-every", type=int, metavar="K",
                        default=env_default("server_error_every", int))
    for name in DURATIONS:
        parser.add_argument("--" + name.replace("_", "-"), type=float, metavar="S",
                            default=env_default(name, float))
    parser.add_argument("--lose", type=pairs, action="append", default=[], metavar="ACTION=N",
                        help="the next N calls of ACTION take effect but answer 503 (repeatable)")
    parser.add_argument("--retained-backup", type=pairs, action="append", default=[],
                        metavar="IDENT=DAYS", help="a retained automated backup of an older "
                        "IDENT, restorable from DAYS ago to DAYS-10 ago (repeatable)")
    args = parser.parse_args()
    settings = {name: getattr(args, name) for name in DEFAULTS}
    settings["lose"] = dict(args.lose)
    settings["retained_backups"] = {"prod-db": 30} if args.seed else {}
    settings["retained_backups"].update(dict(args.retained_backup))
    try:
        for name, value in settings.items():
            CHECKS[name](name, value)
    except ValueError as err:
        parser.error(str(err))

    # moto_server sets this too; some moto services build URLs to themselves from it.
    os.environ.setdefault("MOTO_PORT", str(args.port))
    # Both signals end run_simple cleanly. SIGINT gets a handler of its own as well, because a
    # process started in the background by a non-interactive shell inherits SIGINT as ignored.
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: sys.exit(0))

    global TWIN
    TWIN = Twin(DomainDispatcherApplication(create_backend_app), settings)
    install_patches()
    threading.Thread(target=TWIN.ticker, daemon=True).start()
    threading.Thread(target=start_up, args=(TWIN, args.port, args.seed), daemon=True).start()
    run_simple("127.0.0.1", args.port, TWIN, threaded=True, request_handler=MotoRequestHandler)


if __name__ == "__main__":
    main()
