# ruff: noqa: N802, N803, N806
# (The sample's JScript names are kept, so the port reads side by side with the original.)
"""Adding and removing port mappings: Microsoft's JScript sample, ported to Python.

The original ("Adding and Removing Port Mappings (JScript)", ICS/ICF API documentation;
seed-system.md §4.4) adds the asymmetric mapping "Ben's Port Mapping" (TCP 555 -> 444 on the
computer "compnametst2") to every shared or firewalled connection, enables it, and at the end
deletes it again. As in the original, the final clean-up only touches the last connection
configured (``objShareConf`` outlives the loop), and any old copy of the mapping is deleted
first "in case it exists already".

Usage::

    SHAREWALL_SOCKET=... python port_mappings_jscript.py [--target NAME | --target-ip ADDRESS] [--keep]

``--target`` replaces the computer name, ``--target-ip`` uses the original's commented-out
alternative (an address with ICSTT_IPADDRESS), and ``--keep`` stops before the clean-up, where
the original says "do other work here", leaving the mapping in force.
"""

from __future__ import annotations

import argparse

from sharewall.api.hnetcfg import (
    CreateObject,
    Enumerator,
    HResultError,
    INetSharingConfiguration,
    INetSharingManager,
)

ICSSC_DEFAULT = 0

ICSTT_NAME = 0
ICSTT_IPADDRESS = 1

# from netcon.idl
# NCM_SHAREDACCESSHOST_LAN = 8
# NCM_SHAREDACCESSHOST_RAS = 9

NAT_PROTOCOL_TCP = 6
NAT_PROTOCOL_UDP = 17

# from netcon.idl
NCCF_SHARED = 0x0100  # Connection is shared
NCCF_FIREWALLED = 0x0400  # Connection is firewalled

TARGET = "compnametst2"
TARGET_TYPE = ICSTT_NAME
KEEP = False


def Main() -> None:
    try:
        objShare = CreateObject("HNetCfg.HNetShare.1")
    except HResultError:
        print("failed to create HNetCfg.HNetShare object!")
    else:
        DoTheWork(objShare)


def DoTheWork(objShare: INetSharingManager) -> None:
    objShareConf: INetSharingConfiguration | None = None  # JScript's var: outlives the loop
    objEveryConnColl = objShare.EnumEveryConnection
    # enum INetConnections until props are correct
    objEveryEnum = Enumerator(objEveryConnColl)
    objEveryEnum.moveFirst()
    while not objEveryEnum.atEnd():
        objNetConn = objEveryEnum.item()
        if objNetConn is None:
            print("can't get any net connections!")
        else:
            objNetConnProps = objShare.NetConnectionProps(objNetConn)
            if (objNetConnProps.Characteristics & NCCF_SHARED) or (
                objNetConnProps.Characteristics & NCCF_FIREWALLED
            ):
                # found one!
                objShareConf = objShare.INetSharingConfigurationForINetConnection(objNetConn)
                AddAsymmetricPortMapping(objShareConf)
                print("added a port mapping named 'Ben's Port Mapping'.")
        objEveryEnum.moveNext()

    if KEEP:
        return  # do other work here: the mapping stays in force
    # when you're done,
    # clean up port mapping
    print("cleaning up")
    if objShareConf is not None:
        DeletePortMapping(objShareConf, NAT_PROTOCOL_TCP, 555, 444)


def AddAsymmetricPortMapping(objShareConf: INetSharingConfiguration) -> None:
    # in case it exists already....
    DeletePortMapping(objShareConf, NAT_PROTOCOL_TCP, 555, 444)

    try:
        objPortMapping = objShareConf.AddPortMapping(
            "Ben's Port Mapping", NAT_PROTOCOL_TCP, 555, 444, 0, TARGET, TARGET_TYPE
        )
        # or "192.168.0.2", ICSTT_IPADDRESS (--target-ip)
    except HResultError as err:
        print(f"failed to add asymmetric port mapping! ({err})")
        return
    print("just added NAT_PROTOCOL_TCP, 555, 444!")

    objPortMapping.Enable()
    print("just enabled port mapping!")


def DeletePortMapping(
    objShareConf: INetSharingConfiguration,
    typeProtocol: int,
    iExternalPort: int,
    iInternalPort: int,
) -> None:
    # enum, deleting match, if any
    objPMColl = objShareConf.EnumPortMappings(ICSSC_DEFAULT)
    varEnumerator = Enumerator(objPMColl)
    varEnumerator.moveFirst()
    while not varEnumerator.atEnd():
        objPortMapping = varEnumerator.item()
        if objPortMapping is not None:
            objPMProps = objPortMapping.Properties
            if (
                objPMProps.IPProtocol == typeProtocol
                and objPMProps.ExternalPort == iExternalPort
                and objPMProps.InternalPort == iInternalPort
            ):
                objPortMapping.Delete()
                # or objShareConf.RemovePortMapping(objPortMapping)

                print(f"just deleted {typeProtocol}, {iExternalPort}, {iInternalPort}!")
        varEnumerator.moveNext()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    where = parser.add_mutually_exclusive_group()
    where.add_argument("--target", help="the target computer's name (ICSTT_NAME)")
    where.add_argument("--target-ip", help="the target's IPv4 address (ICSTT_IPADDRESS)")
    parser.add_argument("--keep", action="store_true", help="leave the mapping in force")
    args = parser.parse_args()
    if args.target_ip:
        TARGET, TARGET_TYPE = args.target_ip, ICSTT_IPADDRESS
    elif args.target:
        TARGET = args.target
    KEEP = args.keep

    print("Starting....")
    Main()
    print("Ending....")
