"""Keep a user's account attributes from being written back by Trac.

Trac saves a session whose values changed during a request (a
preference, the timeline's last visit) by deleting every attribute of
the user and writing back what the request read when it began. Among
them are the password, AccountManager's lock (``failed_logins``,
``failed_logins_count``, ``lock_count``) and its ``approval``: a request
that was running while an administrator removed the password, revoked
the approval or while a lock engaged would undo it. So such a save
writes those as the database has them, in the same transaction, after
taking the user's session row (which every writer of them takes first).
"""

from trac.core import Component, implements
from trac.web.api import IRequestFilter

#: What Trac's session must never write back.
PROTECTED = ('password', 'failed_logins', 'failed_logins_count',
             'lock_count', 'approval')

_NAMES = ', '.join("'%s'" % name for name in PROTECTED)

#: Taken first by every writer of them: the user's session row.
HOLD = ("UPDATE session SET last_visit=last_visit "
        "WHERE sid=%s AND authenticated=1")


class SessionGuard(Component):
    """Trac's session saves leave the account attributes as they are."""

    implements(IRequestFilter)

    def pre_process_request(self, req, handler):
        session = req.session
        if session.authenticated and not getattr(session, '_guarded', 0):
            session._guarded = True
            session.save = _guarded_save(self.env, session, session.save)
        return handler

    def post_process_request(self, req, template, data, metadata):
        return template, data, metadata


def _guarded_save(env, session, save):
    def guarded_save():
        if session._old == dict(session.items()):
            return save()       # Trac writes no attribute then
        with env.db_transaction as db:
            db(HOLD, (session.sid,))
            kept = db("SELECT name, value FROM session_attribute "
                      "WHERE sid=%s AND authenticated=1 AND name IN (" +
                      _NAMES + ")", (session.sid,))
            save()
            db("DELETE FROM session_attribute WHERE sid=%s AND "
               "authenticated=1 AND name IN (" + _NAMES + ")",
               (session.sid,))
            db.executemany("INSERT INTO session_attribute "
                           "(sid, authenticated, name, value) "
                           "VALUES (%s, 1, %s, %s)",
                           [(session.sid, name, value)
                            for name, value in kept])
        _remember(session, dict(kept))
    return guarded_save


def _remember(session, kept):
    """The session as saved: the protected values as the database has
    them."""
    for name in PROTECTED:
        dict.pop(session, name, None)
        session._old.pop(name, None)
    for name, value in kept.items():
        dict.__setitem__(session, name, value)
        session._old[name] = value
