"""farm-keys: the farm's CURVE keys, made and managed without a sysadmin.

    farm-keys init                      the TaskManager's key pair and trust store
    farm-keys add NAME --role ROLE      a key pair for a machine or user, trusted
                [--machine MACHINE]     (a monitor's key speaks for machine NAME only)
    farm-keys revoke NAME               stop trusting it (no restart needed)
    farm-keys invite [--role machine]   one line a new machine joins with (farm-join)
                [--expires 1h] [--uses 1] [--machine NAME] [--capability C]
    farm-keys uninvite ID               withdraw an invitation
    farm-keys list                      who is trusted, as what; pending invitations

Everything lives in one directory (default ~/.config/computefarm/keys):
taskmanager.key / .key_secret, authorized/NAME.key (the trusted public keys,
with their role), peers/NAME.key_secret (a new machine's key pair, to copy to it
once), revoked/NAME.key, invitations/ID.json (a digest of each invitation's
secret, never the secret). Secret files are written 0600.
"""

import argparse
import os
import shutil
import sys
import time

import zmq

from .. import addresses, defaults
from ..config import load_config
from ..configcheck import check_address, duration
from ..exceptions import FarmError, UsageError
from ..invitations import INVITE_ROLES, Invitations, make_token, refusal
from ..wire.certificates import KEY_ROLES as ROLES
from ..wire.certificates import read_certificate, write_certificate
from .common import add_version


def init(directory, out):
    os.makedirs(directory, mode=0o700, exist_ok=True)
    for sub in ("authorized", "peers", "revoked"):
        os.makedirs(os.path.join(directory, sub), mode=0o700, exist_ok=True)
    secret_path = os.path.join(directory, "taskmanager.key_secret")
    if os.path.exists(secret_path):
        raise UsageError("%s exists already: the farm has its keys (delete the directory "
                         "to start over)" % secret_path)
    public, secret = zmq.curve_keypair()
    write_certificate(secret_path, public, secret, {"name": "taskmanager"})
    write_certificate(os.path.join(directory, "taskmanager.key"), public,
                      metadata={"name": "taskmanager"})
    out.write("Created the TaskManager's keys in %s.\n\nIn the TaskManager's farm.yaml:\n\n"
              "keys:\n  server: %s\n  server_secret: %s\n  authorized: %s\n\n"
              "Then add a key per machine or user: farm-keys add NAME --role worker\n"
              % (directory, os.path.join(directory, "taskmanager.key"), secret_path,
                 os.path.join(directory, "authorized")))
    return 0


def add(directory, name, role, out, machine=None):
    if role not in ROLES:
        raise UsageError("--role must be one of %s" % ", ".join(ROLES))
    if not name or "/" in name or name.startswith("."):
        raise UsageError("%r is not a usable key name" % name)
    server = os.path.join(directory, "taskmanager.key")
    if not os.path.exists(server):
        raise UsageError("no keys in %s yet: run farm-keys init first" % directory)
    trusted = os.path.join(directory, "authorized", name + ".key")
    if os.path.exists(trusted):
        raise UsageError("%s is already authorized (revoke it first to replace it)" % name)
    if machine is not None and role not in ("worker", "monitor", "machine"):
        raise UsageError("--machine binds worker, monitor and machine keys only, not %s "
                         "keys" % role)
    metadata = {"name": name, "role": role}
    if machine is not None or role in ("monitor", "machine"):
        metadata["machine"] = machine or name
    public, secret = zmq.curve_keypair()
    secret_path = os.path.join(directory, "peers", name + ".key_secret")
    write_certificate(secret_path, public, secret, metadata)
    write_certificate(trusted, public, metadata=metadata)
    out.write("Authorized %s as %s%s.\n\nCopy these two files to it (the secret one only "
              "there, with mode 600):\n  %s\n  %s\n\nand in its farm.yaml:\n\n"
              "keys:\n  server: <where you put taskmanager.key>\n"
              "  secret: <where you put %s.key_secret>\n" % (
                  name, role, " for machine %s" % metadata["machine"]
                  if "machine" in metadata else "", server, secret_path, name))
    return 0


def revoke(directory, name, out):
    trusted = os.path.join(directory, "authorized", name + ".key")
    if not os.path.exists(trusted):
        raise UsageError("%s is not authorized in %s" % (name, directory))
    os.makedirs(os.path.join(directory, "revoked"), mode=0o700, exist_ok=True)
    shutil.move(trusted, os.path.join(directory, "revoked", name + ".key"))
    out.write("Revoked %s: the TaskManager refuses it from its next heartbeat on.\n" % name)
    return 0


def invite(directory, args, out):
    """An invitation, printed as the one line farm-join takes (and only there)."""
    server = os.path.join(directory, "taskmanager.key")
    if not os.path.exists(server):
        raise UsageError("no keys in %s yet: run farm-keys init first" % directory)
    address = args.address
    if address is None:
        config = load_config(args.config)
        address = config.taskmanager.address
        host, _ = addresses.split(address, "taskmanager.address")
        if addresses.is_loopback(host):
            raise UsageError("the TaskManager's address is %s (%s), which no other machine "
                             "reaches: pass --address tcp://HOST:PORT, or set "
                             "taskmanager.address" % (address, config.path or "the default"))
    address = check_address(address, "--address")
    if args.machine is not None and (not args.machine or "/" in args.machine):
        raise UsageError("--machine %r is not a usable machine name" % args.machine)
    record, secret = Invitations(os.path.join(directory, "invitations")).create(
        args.role, duration(args.expires, "--expires"), args.uses, args.machine,
        args.capability or (), args.slots)
    out.write(make_token(address, read_certificate(server)[0], secret) + "\n")
    print("farm-keys: invitation %s: %s, %d use(s), until %s; on the new machine: "
          "farm-join TOKEN (the line above; it is shown only now)"
          % (record["id"], record["role"], record["uses"], _when(record["expires"])),
          file=sys.stderr)
    return 0


def uninvite(directory, invitation_id, out):
    record = Invitations(os.path.join(directory, "invitations")).revoke(invitation_id)
    out.write("Withdrew invitation %s (%d of %d use(s) taken).\n"
              % (record["id"], record["used"], record["uses"]))
    return 0


def list_keys(directory, out):
    folder = os.path.join(directory, "authorized")
    if not os.path.isdir(folder):
        raise UsageError("no keys in %s yet: run farm-keys init first" % directory)
    out.write("%-24s %-8s %-16s %-16s %s\n" % ("KEY", "ROLE", "MACHINE", "INVITATION",
                                              "PUBLIC KEY"))
    for name in sorted(os.listdir(folder)):
        if name.endswith(".key"):
            public, _, metadata = read_certificate(os.path.join(folder, name))
            out.write("%-24s %-8s %-16s %-16s %s\n" % (
                name[:-4], metadata.get("role", "?"), metadata.get("machine", "-"),
                metadata.get("invitation", "-"), public.decode()))
    records = Invitations(os.path.join(directory, "invitations")).all()
    if records:
        now = time.time()
        out.write("\n%-16s %-8s %-16s %-6s %-24s %s\n" % ("INVITATION", "ROLE", "MACHINE",
                                                         "USED", "STATE", "JOINED"))
        for record in records:
            why = refusal(record, now)
            out.write("%-16s %-8s %-16s %-6s %-24s %s\n" % (
                record["id"], record["role"], record["machine"] or "-",
                "%d/%d" % (record["used"], record["uses"]),
                why or "pending until " + _when(record["expires"]),
                ", ".join("%s from %s" % (j["name"], j["address"]) for j in record["joined"])
                or "-"))
    return 0


def _when(wall):
    return time.strftime("%Y-%m-%d %H:%M", time.localtime(wall))


def main(argv=None, out=None):
    out = out or sys.stdout
    parser = argparse.ArgumentParser(prog="farm-keys", description=__doc__.splitlines()[0])
    add_version(parser)
    parser.add_argument("--dir", default=defaults.KEYS_DIR, help="the key directory [%(default)s]")
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("init", help="create the TaskManager's keys")
    added = commands.add_parser("add", help="create and authorize a key pair")
    added.add_argument("name")
    added.add_argument("--role", required=True, choices=ROLES)
    added.add_argument("--machine", help="the machine a worker or monitor key speaks for "
                       "(a monitor key's default: NAME)")
    revoked = commands.add_parser("revoke", help="stop trusting a key")
    revoked.add_argument("name")
    invited = commands.add_parser("invite", help="print a one-line invitation for farm-join")
    invited.add_argument("--role", default="machine", choices=INVITE_ROLES,
                         help="machine: its workers and monitor; worker: workers only; "
                              "client: a user [%(default)s]")
    invited.add_argument("--expires", default="1h", metavar="TIME",
                         help="valid for this long: 90s, 30m, 2h, 7d [%(default)s]")
    invited.add_argument("--uses", type=int, default=1, metavar="N",
                         help="machines that may join with it [%(default)s]")
    invited.add_argument("--machine", metavar="NAME",
                         help="the name the machine gets (default: its host name)")
    invited.add_argument("--capability", action="append", metavar="NAME",
                         help="what its workers offer (repeatable; default: shell, python)")
    invited.add_argument("--slots", type=int, metavar="N",
                         help="tasks its worker runs at once (default: its CPU count)")
    invited.add_argument("--address", metavar="ADDR",
                         help="the TaskManager's address the new machine dials "
                              "(default: farm.yaml's taskmanager.address)")
    invited.add_argument("--config", metavar="FILE", help="farm.yaml to read the address from")
    uninvited = commands.add_parser("uninvite", help="withdraw an invitation")
    uninvited.add_argument("id")
    commands.add_parser("list", help="show the authorized keys and the invitations")
    args = parser.parse_args(argv)
    directory = os.path.expanduser(args.dir)
    try:
        if args.command == "init":
            return init(directory, out)
        if args.command == "add":
            return add(directory, args.name, args.role, out, args.machine)
        if args.command == "revoke":
            return revoke(directory, args.name, out)
        if args.command == "invite":
            return invite(directory, args, out)
        if args.command == "uninvite":
            return uninvite(directory, args.id, out)
        return list_keys(directory, out)
    except FarmError as exc:
        print("ERROR: farm-keys: %s" % exc, file=sys.stderr)
        return exc.exit_code


if __name__ == "__main__":
    sys.exit(main())
