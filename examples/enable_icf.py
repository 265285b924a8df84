# ruff: noqa: N802, N803, N806
# (The sample's VBScript names are kept, so the port reads side by side with the original.)
"""Enabling Internet Connection Firewall: Microsoft's VBScript sample, ported to Python.

The original ("Enabling Internet Connection Firewall (VBScript)", ICS/ICF API documentation;
seed-system.md §4.1) checks that sharing is available, counts the public, private and all
connections, then enables the firewall on the connection named on the command line.

Usage::

    SHAREWALL_SOCKET=/run/sharewall/sharewall.sock python enable_icf.py "wan0"

Differences from the original: connection names are interface names; where the VBScript
silently ignores errors (``on error resume next``) this prints them; and the exit status is 1
when the usage is wrong or the connection is not found or cannot be changed (VBScript always
ends with 0).
"""

from __future__ import annotations

import os
import sys

from sharewall.api.hnetcfg import (
    CreateObject,
    HResultError,
    INetSharingConfiguration,
    INetSharingEveryConnectionCollection,
    INetSharingManager,
)

ICSSC_DEFAULT = 0
CONNECTION_PUBLIC = 0
CONNECTION_PRIVATE = 1
CONNECTION_ALL = 2

NetSharingManager: INetSharingManager | None = None
PublicConnection: INetSharingConfiguration | None = None
PrivateConnection: INetSharingConfiguration | None = None
EveryConnectionCollection: INetSharingEveryConnectionCollection | None = None


def Main() -> int:
    objArgs = sys.argv[1:]

    if len(objArgs) == 1:
        con = objArgs[0]

        print(con)

        if Initialize():
            GetConnectionObjects()

            return 0 if FirewallTestByName(con) else 1
        return 1
    szMsg = (
        "Invalid usage! Please provide the name of the connection as the argument.\n\n"
        "Usage:\n"
        "       " + os.path.basename(sys.argv[0]) + ' "Connection Name"'
    )
    print(szMsg)
    return 1


def FirewallTestByName(conName: str) -> bool:
    assert NetSharingManager is not None and EveryConnectionCollection is not None
    bFound = False
    for Item in EveryConnectionCollection:
        EveryConnection = NetSharingManager.INetSharingConfigurationForINetConnection(Item)
        objNCProps = NetSharingManager.NetConnectionProps(Item)
        if conName.upper() == objNCProps.Name.upper():
            szMsg = (
                "Enabling Firewall on connection:\n"
                f"Name: {objNCProps.Name}\n"
                f"Guid: {objNCProps.Guid}\n"
                f"DeviceName: {objNCProps.DeviceName}\n"
                f"Status: {objNCProps.Status}\n"
                f"MediaType: {objNCProps.MediaType}"
            )

            print(szMsg)
            bFound = True
            try:
                EveryConnection.EnableInternetFirewall()
            except HResultError as err:
                print(f"EnableInternetFirewall failed: {err}")
                return False
            break

    if not bFound:
        print(f'Connection "{conName}" was not found')
    return bFound


def Initialize() -> bool:
    global NetSharingManager
    bReturn = False

    try:
        NetSharingManager = CreateObject("HNetCfg.HNetShare.1")
    except HResultError:
        print("Unable to get the HNetCfg.HnetShare.1 object")
    else:
        if not NetSharingManager.SharingInstalled:
            print("Sharing isn't available on this platform.")
        else:
            bReturn = True
    return bReturn


def GetConnectionObjects() -> bool:
    bReturn = True

    if not GetConnection(CONNECTION_PUBLIC):
        bReturn = False

    if not GetConnection(CONNECTION_PRIVATE):
        bReturn = False

    if not GetConnection(CONNECTION_ALL):
        bReturn = False

    return bReturn


def GetConnection(CONNECTION_TYPE: int) -> bool:
    global PublicConnection, PrivateConnection, EveryConnectionCollection
    assert NetSharingManager is not None
    bReturn = True

    if CONNECTION_TYPE == CONNECTION_PUBLIC:
        Public = NetSharingManager.EnumPublicConnections(ICSSC_DEFAULT)
        Count = Public.Count
        if 0 < Count < 2:
            for Item in Public:
                PublicConnection = NetSharingManager.INetSharingConfigurationForINetConnection(Item)
        else:
            bReturn = False
    elif CONNECTION_TYPE == CONNECTION_PRIVATE:
        Private = NetSharingManager.EnumPrivateConnections(ICSSC_DEFAULT)
        Count = Private.Count
        if 0 < Count < 2:
            for Item in Private:
                PrivateConnection = NetSharingManager.INetSharingConfigurationForINetConnection(
                    Item
                )
        else:
            bReturn = False
    elif CONNECTION_TYPE == CONNECTION_ALL:
        Every = NetSharingManager.EnumEveryConnection
        Count = Every.Count
        if Count > 0:
            EveryConnectionCollection = Every
        else:
            bReturn = False
    else:
        return False

    if bReturn:
        if Count == 0:
            print(
                f"No {ConvertConnectionTypeToString(CONNECTION_TYPE)} connections exist "
                "(Connection.Count gave us 0)"
            )
            bReturn = False
        # valid to have more than 1 connection returned from EnumEveryConnection
        elif Count > 1 and CONNECTION_TYPE != CONNECTION_ALL:
            print(
                f"ERROR: There was more than one {ConvertConnectionTypeToString(CONNECTION_TYPE)}"
                f" connection ({Count})"
            )
            bReturn = False
    print(f"{Count} objects for connection type {ConvertConnectionTypeToString(CONNECTION_TYPE)}")

    return bReturn


def ConvertConnectionTypeToString(ConnectionID: int) -> str:
    if ConnectionID == CONNECTION_PUBLIC:
        ConnectionString = "public"
    elif ConnectionID == CONNECTION_PRIVATE:
        ConnectionString = "private"
    elif ConnectionID == CONNECTION_ALL:
        ConnectionString = "all"
    else:
        ConnectionString = "Unknown: " + str(ConnectionID)

    return ConnectionString


if __name__ == "__main__":
    sys.exit(Main())
