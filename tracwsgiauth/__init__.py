"""Authenticate and authorise Apache (mod_wsgi) users against a Trac
environment's own users and permission groups."""

__version__ = '0.1.0'
