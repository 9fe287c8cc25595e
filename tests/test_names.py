import sys
import unicodedata

import pytest
from hypothesis import given, strategies as st

from tracwsgiauth.names import canonical_name, from_wire, to_wire


@pytest.mark.parametrize('name, kw, expected', [
    ('alice', {}, 'alice'),
    ('Alice', {}, 'Alice'),
    ('Alice', {'lowercase': True}, 'alice'),
    ('CORP\\alice', {}, 'CORP\\alice'),
    ('CORP\\alice', {'domains': ['corp']}, 'alice'),
    ('corp\\Alice', {'domains': ['CORP'], 'lowercase': True}, 'alice'),
    ('EVIL\\alice', {'domains': ['CORP']}, 'EVIL\\alice'),
    ('EVIL\\alice', {'domains': ['*']}, 'alice'),
    ('\\alice', {'domains': ['*']}, None),
    ('CORP\\', {'domains': ['CORP']}, None),
    ('CORP\\CORP\\bob', {'domains': ['CORP']}, None),
    ('CORP\\\\bob', {'domains': ['CORP']}, None),
    ('alice@EXAMPLE.COM', {'realms': ['example.com']}, 'alice'),
    ('alice@EXAMPLE.COM', {}, 'alice@EXAMPLE.COM'),
    ('alice@OTHER', {'realms': ['EXAMPLE.COM']}, 'alice@OTHER'),
    ('alice@example.com@CORP', {'realms': ['corp']}, 'alice@example.com'),
    ('a@b@c', {'realms': ['*']}, None),
    ('alice@', {'realms': ['*']}, None),
    ('@REALM', {'realms': ['*']}, None),
    ('CORP\\alice@EXAMPLE.COM', {'domains': ['corp'], 'realms': ['*']},
     'alice'),
    ('', {}, None),
    (' alice', {}, None),
    ('alice ', {}, None),
    ('al ice', {}, 'al ice'),
    ('ali\x00ce', {}, None),
    ('ali\nce', {}, None),
    ('ali\u200bce', {}, None),
    ('anonymous', {}, None),
    ('Authenticated', {}, None),
    ('CORP\\anonymous', {'domains': ['CORP']}, None),
    ('x' * 256, {}, None),
    ('x' * 255, {}, 'x' * 255),
    ('ADMIN', {}, 'ADMIN'),
    ('jürgen', {}, 'jürgen'),
    (None, {}, None),
    (b'alice', {}, None),
])
def test_canonical_name(name, kw, expected):
    assert canonical_name(name, **kw) == expected


def test_wire_round_trip():
    assert from_wire('jÃ¼rgen') == 'jürgen'
    assert from_wire('j\xfcrgen') == 'j\xfcrgen'    # Latin-1 client
    assert from_wire('日本') == '日本'               # not from the wire
    assert to_wire('jürgen') == 'jÃ¼rgen'


@given(st.text())
def test_wire_inverse(text):
    try:
        text.encode('utf-8')
    except UnicodeEncodeError:
        return
    assert from_wire(to_wire(text)) == text


rules = st.fixed_dictionaries({
    'domains': st.lists(st.sampled_from(['CORP', '*', 'x'])),
    'realms': st.lists(st.sampled_from(['EXAMPLE.COM', '*', 'x'])),
    'lowercase': st.booleans()})


@given(st.text(alphabet='aBc\\@ xX.\x00é', max_size=12), rules)
def test_rule_is_idempotent(name, kw):
    once = canonical_name(name, **kw)
    if once is not None:
        assert canonical_name(once, **kw) == once


def test_every_control_format_and_line_separator_is_refused():
    refused = [chr(cp) for cp in range(sys.maxunicode + 1)
               if unicodedata.category(chr(cp)) in ('Cc', 'Cf', 'Zl', 'Zp')]
    assert len(refused) > 200
    assert [c for c in refused if canonical_name('al%sice' % c)] == []


def test_other_unprintable_characters_stay_part_of_a_name():
    for name in ('al\u00a0ice', 'al\u3000ice', 'al\ue000ice'):
        assert canonical_name(name) == name
