# ruff: noqa: N802, N803, N806
# (The sample's C++ names are kept, so the port reads side by side with the original.)
"""Adding and removing port mappings: Microsoft's C++ sample, ported to Python.

The original ("Adding and Removing Port Mappings (C++)", ICS/ICF API documentation;
seed-system.md §4.5) works through the vtable interface: ``get_EnumEveryConnection`` ->
``get__NewEnum`` -> ``IEnumVARIANT::Next`` -> ``get_NetConnectionProps`` -> characteristics and
media type. It deletes any TCP 555 mapping on the first shared or firewalled connection, adds
"Ben's Port Mapping" (TCP 555 -> 192.168.0.2:444) to every shared or firewalled connection
whose sharing or firewall is on, enables it, and deletes it again at the end.

Usage::

    SHAREWALL_SOCKET=... python port_mappings_cpp.py [--target-ip ADDRESS] [--keep]

``--target-ip`` replaces 192.168.0.2; ``--keep`` stops before the clean-up, where the original
says "do other work here", leaving the mapping in force. As in C++, every step yields an
HRESULT; the exit status is 0 when the last one SUCCEEDED, else 1.
"""

from __future__ import annotations

import argparse
import sys

from sharewall.api.hnetcfg import (
    E_FAIL,
    ICSSC_DEFAULT,
    ICSTT_IPADDRESS,
    NCCF_FIREWALLED,
    NCCF_SHARED,
    NCM_SHAREDACCESSHOST_LAN,
    NCM_SHAREDACCESSHOST_RAS,
    S_OK,
    CreateObject,
    HResultError,
    INetConnection,
    INetSharingConfiguration,
    INetSharingManager,
    INetSharingPortMapping,
)

# as in winsock.h
NAT_PROTOCOL_TCP = 6

TARGET_IP = "192.168.0.2"


def SUCCEEDED(hr: int) -> bool:
    return hr & 0x80000000 == 0


def DeletePortMapping(pNSM: INetSharingManager, ucIPProtocol: int, usExternalPort: int) -> int:
    # this is done in 2 parts:
    # 1:  enum connections until we get one that we can convert into an INetSharingConfiguration
    # 2:  then, enum portmappings, and delete if we find a match.

    # PART 1: find a valid connection
    pNC: INetConnection | None = None  # fill this out for part 2 below

    pNSECC = pNSM.get_EnumEveryConnection()
    # enumerate connections
    pEV = pNSECC.get__NewEnum()
    while v := pEV.Next(1):
        bFoundIt = False
        pNC = v[0]
        pNCP = pNSM.get_NetConnectionProps(pNC)
        # check properties for firewalled or shared connection
        dwCharacteristics = pNCP.get_Characteristics()
        if dwCharacteristics & (NCCF_SHARED | NCCF_FIREWALLED):
            MediaType = pNCP.get_MediaType()
            if MediaType not in (NCM_SHAREDACCESSHOST_LAN, NCM_SHAREDACCESSHOST_RAS):
                # got a shared/firewalled connection
                bFoundIt = True
        if not bFoundIt:
            pNC = None
        else:
            break
    if pNC is None:
        print("failed to find a valid connection!")
        return E_FAIL
    pNSC = pNSM.get_INetSharingConfigurationForINetConnection(pNC)

    # PART 2:  enum port mappings, deleting match, if any
    hr = S_OK
    pNSPMC = pNSC.get_EnumPortMappings(ICSSC_DEFAULT)

    # this is the interface to be filled out by the code below
    pNSPM: INetSharingPortMapping | None = None

    pEV2 = pNSPMC.get__NewEnum()
    while v2 := pEV2.Next(1):
        pNSPM = v2[0]
        pNSPMP = pNSPM.get_Properties()
        uc = pNSPMP.get_IPProtocol()
        usExternal = pNSPMP.get_ExternalPort()
        if uc == ucIPProtocol and usExternal == usExternalPort:
            break  # bail out if we've found one
        pNSPM = None  # hang onto reference to pNSPM iff found (used below)

    if pNSPM is not None:
        try:
            pNSPM.Delete()  # or pNSC.RemovePortMapping(pNSPM)
        except HResultError as err:
            hr = err.hresult
        print("just deleted a port mapping!")
    return hr


def AddAsymmetricPortMapping(pNSC: INetSharingConfiguration) -> int:
    hr = S_OK
    vb1 = pNSC.get_SharingEnabled()
    vb2 = pNSC.get_InternetFirewallEnabled()
    if not vb1 and not vb2:
        print("sharing and/or firewall not enabled on this connection!")
    else:
        try:
            pNSPM = pNSC.AddPortMapping(
                "Ben's Port Mapping", NAT_PROTOCOL_TCP, 555, 444, 0, TARGET_IP, ICSTT_IPADDRESS
            )
        except HResultError as err:
            print("failed to add asymmetric port mapping!")
            return err.hresult
        print("just added NAT_PROTOCOL_TCP, 555, 444!")

        try:
            pNSPM.Enable()
        except HResultError as err:
            hr = err.hresult
        print("just enabled port mapping!")
    return hr


def DoTheWork(pNSM: INetSharingManager) -> int:
    # add a port mapping to every firewalled or shared connection
    hr = S_OK
    pNSECC = pNSM.get_EnumEveryConnection()

    # enumerate connections
    pEV = pNSECC.get__NewEnum()
    while v := pEV.Next(1):
        pNC = v[0]
        pNCP = pNSM.get_NetConnectionProps(pNC)
        # check properties for firewalled or shared connection
        dwCharacteristics = pNCP.get_Characteristics()
        if dwCharacteristics & (NCCF_SHARED | NCCF_FIREWALLED):
            MediaType = pNCP.get_MediaType()
            if MediaType not in (NCM_SHAREDACCESSHOST_LAN, NCM_SHAREDACCESSHOST_RAS):
                # got a shared/firewalled connection
                pNSC = pNSM.get_INetSharingConfigurationForINetConnection(pNC)
                hr = AddAsymmetricPortMapping(pNSC)
    return hr


def main(keep: bool) -> int:
    try:
        pNSM = CreateObject("HNetCfg.HNetShare")
    except HResultError as err:
        print("failed to create NetSharingManager object")
        return err.hresult

    try:
        # in case it exists already
        DeletePortMapping(pNSM, NAT_PROTOCOL_TCP, 555)

        # add a port mapping to every shared or firewalled connection.
        hr = DoTheWork(pNSM)
        if SUCCEEDED(hr) and not keep:
            # do other work here.
            # when you're done,
            # clean up port mapping

            hr = DeletePortMapping(pNSM, NAT_PROTOCOL_TCP, 555)
    except HResultError as err:  # a call the C++ does not check failed
        print(f"failed: {err}")
        hr = err.hresult
    return hr


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--target-ip", default=TARGET_IP, help="the target's IPv4 address")
    parser.add_argument("--keep", action="store_true", help="leave the mapping in force")
    args = parser.parse_args()
    TARGET_IP = args.target_ip
    sys.exit(0 if SUCCEEDED(main(args.keep)) else 1)
