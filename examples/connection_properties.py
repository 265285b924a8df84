# ruff: noqa: N802, N806
# (The samples' VBScript/JScript names are kept, so the port reads side by side with the originals.)
"""Retrieving the properties of a connection: Microsoft's VBScript and JScript samples, ported.

The originals ("Retrieving the Properties of a Connection (VBScript)" and "(JScript)", ICS/ICF
API documentation; seed-system.md §4.2-4.3) enumerate every connection, get its sharing
configuration and print its Name, Guid, DeviceName, Status and MediaType.

Usage::

    SHAREWALL_SOCKET=/run/sharewall/sharewall.sock python connection_properties.py [--jscript]

Without ``--jscript`` it runs the VBScript variant (``for each``, one property per line); with
it, the JScript variant (``new Enumerator``, one line per connection). Difference from the
originals: VBScript's ``chr(13)`` separators are newlines.
"""

from __future__ import annotations

import sys

from sharewall.api.hnetcfg import CreateObject, Enumerator, HResultError


def MainVBScript() -> int:
    try:
        objShare = CreateObject("HNetCfg.HNetShare.1")
    except HResultError:
        return 1

    objEveryColl = objShare.EnumEveryConnection

    for objNetConn in objEveryColl:
        objShareCfg = objShare.INetSharingConfigurationForINetConnection(objNetConn)
        if objShareCfg is not None:
            objNCProps = objShare.NetConnectionProps(objNetConn)
            if objNCProps is not None:
                text = (
                    f"Name: {objNCProps.Name}\n"
                    f"Guid: {objNCProps.Guid}\n"
                    f"DeviceName: {objNCProps.DeviceName}\n"
                    f"Status: {objNCProps.Status}\n"
                    f"MediaType: {objNCProps.MediaType}"
                )

                print(text)
                # Add code here.
    return 0


def MainJScript() -> int:
    # create net sharing manager
    objShare = CreateObject("HNetCfg.HNetShare.1")

    # get enumerator for every connection
    objEveryColl = objShare.EnumEveryConnection

    if objEveryColl is not None:
        varCount = objEveryColl.Count
        if varCount > 0:
            # convert to built-in Java-style enumerator
            e = Enumerator(objEveryColl)
            e.moveFirst()
            while not e.atEnd():
                # get an INetConnection interface (not an ole-automation object)
                objNetConn = e.item()
                if objNetConn is not None:
                    # find the right connection, by examining the NetConnectionProps
                    objNCProps = objShare.NetConnectionProps(objNetConn)
                    if objNCProps is not None:
                        # select correct INetConnection using Name, Guid or Device name
                        text = (
                            "Name: "
                            + objNCProps.Name
                            + ", Guid: "
                            + objNCProps.Guid
                            + ", DeviceName: "
                            + objNCProps.DeviceName
                            + ", Status: "
                            + str(objNCProps.Status)
                            + ", MediaType: "
                            + str(objNCProps.MediaType)
                        )
                        print(text)

                        # add code here; for example, to enable the firewall on a named connection:
                        # if objNCProps.Name != "wan0":
                        #     e.moveNext()
                        #     continue
                        # objShareCfg = objShare.INetSharingConfigurationForINetConnection(objNetConn)
                        # objShareCfg.EnableInternetFirewall()
                        # break
                e.moveNext()
    return 0


if __name__ == "__main__":
    sys.exit(MainJScript() if "--jscript" in sys.argv[1:] else MainVBScript())
