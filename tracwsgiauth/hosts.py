"""``allow_hosts``/``deny_hosts``: which client addresses may reach a
location guarded by ``WSGIAccessScript``. No Trac import."""

import ipaddress


def _network(entry):
    """The network an entry names; an IPv4-mapped IPv6 one
    (``::ffff:192.0.2.1``) as the IPv4 network it maps, because Apache
    passes an IPv4 client in dotted form. Raises ValueError."""
    network = ipaddress.ip_network(entry, strict=False)
    mapped = getattr(network.network_address, 'ipv4_mapped', None)
    if mapped is not None and network.prefixlen >= 96:
        network = ipaddress.ip_network(
            '%s/%d' % (mapped, network.prefixlen - 96), strict=False)
    return network


def _address(text):
    address = ipaddress.ip_address(text)
    mapped = getattr(address, 'ipv4_mapped', None)
    return mapped if mapped is not None else address


class HostRules(object):
    """The two lists, read once. An entry that is not an address or a
    network makes the rules refuse everybody (fail closed); `problems`
    says which, and which entries were read as IPv4."""

    def __init__(self, allow, deny):
        self.problems = []
        self._allow = self._read('allow_hosts', allow)
        self._deny = self._read('deny_hosts', deny)

    def _read(self, option, entries):
        networks = []
        for entry in entries:
            try:
                network = _network(entry)
            except ValueError:
                self.problems.append('[wsgiauth] %s: %r is not an address '
                                     'or network: every client refused'
                                     % (option, entry))
                networks.append(None)
                continue
            if str(network) != str(ipaddress.ip_network(entry, False)):
                self.problems.append('[wsgiauth] %s: %r read as %s (Apache '
                                     'passes IPv4 clients dotted)'
                                     % (option, entry, network))
            networks.append(network)
        return networks

    def allowed(self, address):
        """Whether a client address passes the lists."""
        if None in self._allow or None in self._deny:
            return False
        try:
            address = _address(address)
        except ValueError:
            return False
        if any(address in n for n in self._deny):
            return False
        return not self._allow or any(address in n for n in self._allow)
