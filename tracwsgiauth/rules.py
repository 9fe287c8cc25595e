"""The login rules of one environment, read from its trac.ini with no
Trac import: what `modwsgi`'s provider decides with, reloaded whenever a
trac.ini file changes."""

from collections import namedtuple

from . import policy, tables, tracini
from .guard import guard_for
from .hosts import HostRules
from .login import DEFAULTS, Login, TypicalHash, dummy_hash, read_settings
from .outcomes import Outcomes

#: The component whose enabling in [components] turns the plugin on.
COMPONENT = 'tracwsgiauth.accounts.AuthStore'


class NotEnabled(Exception):
    """The environment does not enable tracwsgiauth."""


#: The login rules of one environment, with what they read through.
Rules = namedtuple('Rules', 'login reader hosts timeout guard')

#: What a login needs of one loaded environment.
Loaded = namedtuple('Loaded', 'ini answers outcomes ' +
                    ' '.join(Rules._fields))


def rules_for(env_path, config, pooled=True):
    """The login rules of the environment at `env_path` whose trac.ini
    `config` gives: a `tracini.TracIni` here, or Trac's own
    Configuration (trac-admin, tests), which answer alike."""
    timeout = config.getint('wsgiauth', 'connect_timeout',
                            DEFAULTS['connect_timeout'])
    reader = tables.shared_reader(
        env_path, config.get('trac', 'database', 'sqlite:db/trac.db'),
        pooled and config.getbool('wsgiauth', 'postgres_pooling', True),
        timeout)
    typical = TypicalHash(
        lambda: tables.stored_passwords(reader),
        dummy_hash(config.get('wsgiauth', 'hash_scheme',
                              DEFAULTS['hash_scheme']),
                   config.get('wsgiauth', 'realm', DEFAULTS['realm'])))
    settings = read_settings(env_path, config)
    guard = guard_for(env_path)
    guard.configure(config, timeout)
    login = Login(settings, lambda name: tables.account(reader, name),
                  typical, guard.recorder(reader, settings.lock))
    hosts = HostRules(config.getlist('wsgiauth', 'allow_hosts'),
                      config.getlist('wsgiauth', 'deny_hosts'))
    return Rules(login, reader, hosts, timeout, guard)


def load(env_path, pooled):
    """The login rules of the environment as its trac.ini files are now,
    read with no Trac import."""
    ini = tracini.load(env_path)
    if not ini.enabled(COMPONENT):
        raise NotEnabled('tracwsgiauth is not enabled in [components] '
                         'of trac.ini')
    rules = rules_for(env_path, ini, pooled)
    return Loaded(ini, policy.Remembered(),
                  Outcomes(rules.login), *rules)
