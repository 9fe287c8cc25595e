"""A Trac environment's trac.ini read as Trac 1.6 reads it, importing no
Trac module (standard library only).

Each file is parsed by `configparser.ConfigParser` set up as Trac's
``UnicodeConfigParser``, so comments, continuation lines, ``%``,
``[DEFAULT]`` and the errors that make Trac refuse a file are Trac's;
``[inherit] file`` and the answers follow ``trac.config.Configuration``
and ``trac.env.Environment``.  Not known here: defaults registered by
Trac components (pass the default you want) and plugins that Trac
enables because it loaded them from a plugins folder.
"""

import configparser
import os
import stat

_TRUE = ('yes', 'true', 'enabled', 'on')


class TracIniError(ValueError):
    """A trac.ini file Trac refuses too: bad syntax, a duplicate section
    or option, bytes that are not UTF-8 (a BOM included), or an inherit
    cycle."""


class _Parser(configparser.ConfigParser):
    """Trac's ``UnicodeConfigParser``: no interpolation, option names
    lower-cased (create it with ``interpolation=None``)."""

    def optionxform(self, optionstr):
        return optionstr.lower()


def as_bool(value):
    """``trac.util.as_bool``: a number is true unless zero (``nan`` is
    true); otherwise ``yes``, ``true``, ``enabled``, ``on`` in any case
    are true and any other text is false."""
    if isinstance(value, str):
        try:
            return bool(float(value))
        except ValueError:
            return value.strip().lower() in _TRUE
    try:
        return bool(value)
    except (TypeError, ValueError):
        return False


def _stat(path):
    """The file's `os.stat`, or None where Trac's ``os.path.isfile``
    fails to stat it (Trac then ignores the file)."""
    try:
        return os.stat(path)
    except (OSError, ValueError):
        return None


def _mtime(st):
    return None if st is None else st.st_mtime_ns


def _parse(path):
    """One file parsed as ``Configuration.parse_if_needed`` parses it;
    an OSError when it cannot be read (Trac: "Error reading ...")."""
    parser = _Parser(interpolation=None)
    with open(path, encoding='utf-8') as f:
        try:
            parser.read_file(f, path)
        except (UnicodeDecodeError, configparser.Error) as e:
            raise TracIniError('%s: Trac refuses this file: %s'
                               % (path, ' '.join(str(e).split()))) from e
    return parser


def _inherited(path, parser):
    """The files of ``[inherit] file`` as ``Configuration._get_parents``
    names them: split on commas, stripped, empty names kept, relative to
    the folder of the file that names them."""
    if not parser.has_option('inherit', 'file'):
        return []
    names = [name.strip() for name in parser.get('inherit', 'file')
             .split(',')]
    return [name if os.path.isabs(name)
            else os.path.join(os.path.dirname(path), name) for name in names]


def _read(path, ancestors, found):
    """Stamp `path`, then read it and what it inherits, depth first, into
    `found` (a list of (path, stamp, parser or None))."""
    st = _stat(path)
    if st is None or not stat.S_ISREG(st.st_mode):
        found.append((path, _mtime(st), None))
        return
    key = (st.st_dev, st.st_ino)
    if key in ancestors:    # Trac recurses until RecursionError
        raise TracIniError('%s: inherits itself through [inherit] file'
                           % path)
    parser = _parse(path)
    found.append((path, _mtime(st), parser))
    for parent in _inherited(path, parser):
        _read(parent, ancestors | {key}, found)


def config_path(env_path):
    """``Environment.config_file_path``: conf/trac.ini under the real
    path of the environment's conf folder."""
    env_path = os.path.normpath(os.path.normcase(env_path))
    conf = os.path.normcase(os.path.realpath(os.path.join(env_path, 'conf')))
    return os.path.join(conf, 'trac.ini')


def load(env_path):
    """The trac.ini of the environment at `env_path` with the files it
    inherits. FileNotFoundError when there is no trac.ini (Trac refuses
    such an environment), another OSError when a file cannot be read,
    TracIniError when Trac would refuse a file."""
    path = config_path(env_path)
    found = []
    _read(path, frozenset(), found)
    if found[0][2] is None:
        raise FileNotFoundError('%s: no Trac configuration file there'
                                % path)
    return TracIni(found)


class TracIni(object):
    """trac.ini and the files it inherits, as read once by `load`.

    `files`: their paths, nearest first (trac.ini, then each inherited
    file followed by what it inherits, in ``[inherit] file`` order);
    missing ones and non-files included, as Trac lists them. `stamp`:
    their ``st_mtime_ns`` (None when missing) taken before each was read.
    """

    def __init__(self, found):
        self.files = [path for path, _, _ in found]
        self.stamp = [stamp for _, stamp, _ in found]
        self._watched = [(path, stamp) for path, stamp, _ in found]
        self._parsers = [parser for _, _, parser in found
                         if parser is not None]
        self._rules = None

    def changed(self):
        """Whether any file's modification time differs from `stamp` now:
        a file was written, appeared or went (a file that cannot be
        stat'ed counts as missing, as for Trac). One `os.stat` per file."""
        for path, stamp in self._watched:
            try:
                if os.stat(path).st_mtime_ns != stamp:
                    return True
            except (OSError, ValueError):
                if stamp is not None:
                    return True
        return False

    def sections(self):
        """The sections of all files, sorted (Trac's ``sections()``
        without registered defaults)."""
        return sorted({s for p in self._parsers for s in p.sections()})

    def options(self, section):
        """Names of the options set in `section`, in the order of Trac's
        ``Section.iterate``: nearest file first, each name once."""
        names = []
        for parser in self._parsers:
            if parser.has_section(section):
                names += [o for o in parser.options(section)
                          if o not in names]
        return names

    def get(self, section, option, default=None):
        """The text of the nearest file that sets `option` (any case) in
        `section`, or `default`."""
        for parser in self._parsers:
            if parser.has_option(section, option):
                return parser.get(section, option)
        return default

    def getbool(self, section, option, default=False):
        """`as_bool` of the value; a value it does not know is False,
        whatever `default` says (as in Trac)."""
        return as_bool(self.get(section, option, default))

    def getint(self, section, option, default=0):
        """The value as ``int(value or 0)``; ValueError naming
        ``[section] option`` when it is not an integer."""
        value = self.get(section, option, default)
        try:
            return int(value or 0)
        except ValueError:
            raise ValueError('[%s] %s: expected integer, got %r'
                             % (section, option, value)) from None

    def getlist(self, section, option, default=(), sep=',',
                keep_empty=False):
        """The value split on `sep`, items stripped, empty ones dropped
        (Trac's ``ListOption`` defaults). A list `default` is taken as
        it is, less its empty items."""
        value = self.get(section, option, default)
        if not value:
            return []
        items = ([item.strip() for item in value.split(sep)]
                 if isinstance(value, str) else list(value))
        return items if keep_empty else [
            item for item in items if item not in (None, '')]

    def getpath(self, section, option):
        """The value as Trac's ``getpath`` reads it: a relative path
        from the folder of trac.ini, made real; '' when not set."""
        path = self.get(section, option)
        if not path:
            return ''
        path = os.path.join(os.path.dirname(self.files[0]), path)
        return os.path.normcase(os.path.realpath(path))

    def _component_rules(self):
        """``Environment._component_rules``: each ``[components]`` name
        without trailing dots and stars, lower-cased, to `as_bool` of its
        value; a later name of the same rule replaces an earlier one."""
        if self._rules is None:
            self._rules = {
                name.rstrip('.*').lower():
                    as_bool(self.get('components', name))
                for name in self.options('components')}
        return self._rules

    def enabled(self, component):
        """Whether Trac enables the component of this dotted name, as
        ``Environment.is_component_enabled`` decides: the rule of the
        longest matching dotted prefix (any case); with no rule, only
        ``trac.*`` outside ``trac.test(s)``."""
        name = component.lower()
        rules = self._component_rules()
        prefix = name
        while prefix:
            if prefix in rules:
                return rules[prefix]
            prefix = prefix.rpartition('.')[0]
        return name.startswith('trac.') and not name.startswith(
            ('trac.test.', 'trac.tests.'))
