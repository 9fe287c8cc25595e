"""The trac-admin commands, run as an administrator would run them."""

from tests.harness import trac_admin


def test_passwd_check_groups_remove(env_path):
    out = trac_admin(env_path, 'wsgiauth', 'passwd', 'alice',
                     stdin='pässword\n').stdout
    assert 'Password set for alice.' in out
    assert 'Accepted as alice.' in trac_admin(
        env_path, 'wsgiauth', 'check', 'alice', stdin='pässword\n').stdout
    wrong = trac_admin(env_path, 'wsgiauth', 'check', 'alice',
                       stdin='password\n', check=False)
    assert wrong.returncode != 0 and 'wrong password' in wrong.stderr
    trac_admin(env_path, 'permission', 'add', 'alice', 'developers')
    groups = trac_admin(env_path, 'wsgiauth', 'groups', 'alice').stdout
    assert groups.split() == ['anonymous', 'authenticated', 'developers']
    assert 'Password removed' in trac_admin(
        env_path, 'wsgiauth', 'remove', 'alice').stdout
    gone = trac_admin(env_path, 'wsgiauth', 'check', 'alice',
                      stdin='pässword\n', check=False)
    assert gone.returncode != 0 and 'has no password' in gone.stderr


def test_password_never_on_the_command_line(env_path):
    proc = trac_admin(env_path, 'wsgiauth', 'passwd', 'alice', 'secret',
                      stdin='x\n', check=False)
    assert proc.returncode != 0


def test_refuses_bad_names_and_empty_passwords(env_path):
    for name in ('anonymous', ' alice'):
        proc = trac_admin(env_path, 'wsgiauth', 'passwd', name,
                          stdin='pw\n', check=False)
        assert proc.returncode != 0 and 'not an acceptable' in proc.stderr
    proc = trac_admin(env_path, 'wsgiauth', 'passwd', 'alice', stdin='\n',
                      check=False)
    assert proc.returncode != 0 and 'No password' in proc.stderr


def test_bcrypt_limit_is_a_clear_error(env_path):
    proc = trac_admin(env_path, 'wsgiauth', 'passwd', 'alice',
                      stdin='x' * 80 + '\n', check=False)
    assert proc.returncode != 0 and '72 bytes' in proc.stderr


def test_help_documents_the_commands(env_path):
    out = trac_admin(env_path, 'help').stdout
    for command in ('wsgiauth passwd', 'wsgiauth remove', 'wsgiauth check',
                    'wsgiauth groups'):
        assert command in out


def test_doctor_on_sqlite_has_nothing_to_check(env_path):
    out = trac_admin(env_path, 'wsgiauth', 'doctor').stdout
    assert 'not PostgreSQL: nothing to check' in out


def test_a_crlf_line_is_the_password_without_its_line_end(env_path):
    trac_admin(env_path, 'wsgiauth', 'passwd', 'dave', stdin='pw-one\r\n')
    assert 'Accepted as dave.' in trac_admin(
        env_path, 'wsgiauth', 'check', 'dave', stdin='pw-one\n').stdout
    assert 'Accepted as dave.' in trac_admin(
        env_path, 'wsgiauth', 'check', 'dave', stdin='pw-one\r\n').stdout


def test_a_permission_group_gets_no_password(env_path):
    trac_admin(env_path, 'permission', 'add', 'alice', 'developers')
    proc = trac_admin(env_path, 'wsgiauth', 'passwd', 'developers',
                      stdin='pw\n', check=False)
    assert proc.returncode != 0 and 'is a permission group' in proc.stderr
