"""Batched rtnetlink requests on a plain socket, for the links of a container's start.

pyroute2's IPRoute runs an asyncio loop of its own for every call and waits for each
answer before the next request: on a start that was ~8 round trips and most of the
CPU moord spends on a bridge (measured with py-spy). Here pyroute2 only encodes the
messages; they go out in one sendmsg, which the kernel handles in order (a failed one
does not stop the others), and every message's acknowledgement is read back.
"""

from __future__ import annotations

import socket
import struct
from collections.abc import Sequence
from typing import TypeVar

from pyroute2.netlink import nlmsg
from pyroute2.netlink.exceptions import NetlinkError
from pyroute2.netlink.rtnl.ifaddrmsg import ifaddrmsg
from pyroute2.netlink.rtnl.ifinfmsg import ifinfmsg
from pyroute2.netlink.rtnl.rtmsg import rtmsg

EEXIST = 17
ENODEV = 19

_NETLINK_ROUTE = 0
_REQUEST, _ACK, _EXCL, _CREATE = 0x1, 0x4, 0x200, 0x400
_NLMSG_ERROR = 2
_RTM_NEWLINK, _RTM_DELLINK, _RTM_GETLINK, _RTM_NEWADDR, _RTM_NEWROUTE = 16, 17, 18, 20, 24
_IFF_UP = 0x1
_HEADER = struct.Struct("=IHHII")     # struct nlmsghdr
_IFINDEX = struct.Struct("=BxHi")     # struct ifinfomsg, up to ifi_index
_AF_INET = 2
_RT_TABLE_MAIN, _RTPROT_BOOT, _RT_SCOPE_UNIVERSE, _RTN_UNICAST = 254, 3, 0, 1

M = TypeVar("M", bound=nlmsg)


def open_socket() -> socket.socket:
    """An rtnetlink socket of the calling thread's network namespace."""
    return socket.socket(socket.AF_NETLINK, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC,
                         _NETLINK_ROUTE)


def request(sock: socket.socket, messages: Sequence[nlmsg]) -> list[bytes]:
    """Send `messages` at once; per message, the payload of its answer (b"" when the
    kernel only acknowledged it). The first failure raises NetlinkError, once every
    answer is in (the socket stays usable)."""
    if not messages:
        return []
    data = bytearray()
    for sequence, message in enumerate(messages, 1):
        message["header"]["flags"] |= _REQUEST | _ACK
        message["header"]["sequence_number"] = sequence
        message.encode()
        data += message.data
    sock.sendto(data, (0, 0))   # to the kernel
    answers = [b""] * len(messages)
    errors: dict[int, int] = {}
    pending = len(messages)
    while pending:
        packet = sock.recv(65536)
        offset = 0
        while offset + _HEADER.size <= len(packet):
            length, kind, _, sequence, _ = _HEADER.unpack_from(packet, offset)
            if length < _HEADER.size:
                raise NetlinkError(0, "a malformed netlink answer")
            body = packet[offset + _HEADER.size:offset + length]
            if 1 <= sequence <= len(messages):
                if kind == _NLMSG_ERROR:
                    pending -= 1
                    code = -struct.unpack_from("=i", body)[0]
                    if code:
                        errors[sequence] = code
                else:
                    answers[sequence - 1] = body
            offset += (length + 3) & ~3
    if errors:
        raise NetlinkError(errors[min(errors)])
    return answers


def new_veth(host_side: str, master: int, peer: str, peer_namespace_fd: int,
             peer_mac: str) -> ifinfmsg:
    """A veth pair made in place: the host side on the bridge `master` and up, the peer
    in the namespace of `peer_namespace_fd`, named `peer`, with its MAC. The peer is
    brought up after (link_up): the kernel refuses to open it before the pair is
    joined, ENOTCONN."""
    return _link(_RTM_NEWLINK, _CREATE | _EXCL, flags=_IFF_UP, attrs=[
        ("IFLA_IFNAME", host_side), ("IFLA_MASTER", master),
        ("IFLA_LINKINFO", {"attrs": [
            ("IFLA_INFO_KIND", "veth"),
            ("IFLA_INFO_DATA", {"attrs": [("VETH_INFO_PEER", {"attrs": [
                ("IFLA_IFNAME", peer), ("IFLA_NET_NS_FD", peer_namespace_fd),
                ("IFLA_ADDRESS", peer_mac)]})]})]})])


def delete_link(name: str) -> ifinfmsg:
    return _link(_RTM_DELLINK, attrs=[("IFLA_IFNAME", name)])


def get_link(name: str) -> ifinfmsg:
    """Answered with the link's ifinfomsg: see `index`."""
    return _link(_RTM_GETLINK, attrs=[("IFLA_IFNAME", name)])


def index(answer: bytes) -> int:
    """The interface index in a get_link's answer."""
    return int(_IFINDEX.unpack_from(answer)[2])


def link_up(ifindex: int = 0, name: str = "") -> ifinfmsg:
    """By index, or by name (the kernel finds it by name when the index is 0)."""
    return _link(_RTM_NEWLINK, index=ifindex, flags=_IFF_UP,
                 attrs=[("IFLA_IFNAME", name)] if name else [])


def add_address(ifindex: int, address: str, prefix_len: int) -> ifaddrmsg:
    message = _made(ifaddrmsg(), _RTM_NEWADDR, _CREATE | _EXCL)
    message["family"] = _AF_INET
    message["prefixlen"] = prefix_len
    message["index"] = ifindex
    message["attrs"] = [("IFA_LOCAL", address), ("IFA_ADDRESS", address)]
    return message


def add_default_route(gateway: str) -> rtmsg:
    message = _made(rtmsg(), _RTM_NEWROUTE, _CREATE | _EXCL)
    message["family"] = _AF_INET
    message["table"] = _RT_TABLE_MAIN
    message["proto"] = _RTPROT_BOOT
    message["scope"] = _RT_SCOPE_UNIVERSE
    message["type"] = _RTN_UNICAST
    message["attrs"] = [("RTA_GATEWAY", gateway)]
    return message


def _link(kind: int, extra_flags: int = 0, index: int = 0, flags: int = 0,
          attrs: list | None = None) -> ifinfmsg:
    message = _made(ifinfmsg(), kind, extra_flags)
    message["index"] = index
    message["flags"] = flags
    message["change"] = flags
    message["attrs"] = attrs or []
    return message


def _made(message: M, kind: int, flags: int) -> M:
    message["header"]["type"] = kind
    message["header"]["flags"] = flags
    return message
