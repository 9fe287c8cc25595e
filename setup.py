from setuptools import setup

setup(
    name='tracwsgiauth',
    version='0.1.0',  # keep equal to tracwsgiauth.__version__
    description='Apache (mod_wsgi) authentication and authorisation '
                'against a Trac environment\'s users and permission groups',
    long_description=open('README.rst', encoding='utf-8').read(),
    long_description_content_type='text/x-rst',
    license='BSD',
    python_requires='>=3.9',
    packages=['tracwsgiauth', 'tracwsgiauth.templates',
              'tracwsgiauth.contrib'],
    # The top-level templates/ folder ships inside the package.
    package_dir={'tracwsgiauth.templates': 'templates',
                 'tracwsgiauth.contrib': 'contrib'},
    package_data={'tracwsgiauth.templates': ['*'],
                  'tracwsgiauth.contrib': ['*.lua']},
    install_requires=[
        'Trac>=1.6,<1.7',
        # Trac 1.6 imports pkg_resources, which setuptools 82 dropped.
        'setuptools<82',
        'bcrypt>=4.1',
        # maintained fork of passlib (passlib 1.7.4 breaks with bcrypt 5)
        'libpass>=1.9',
    ],
    extras_require={
        'postgres': ['psycopg2>=2.9'],
        # mod_wsgi-express, which deploy's apache/mod_wsgi-express runs
        'apache': ['mod_wsgi>=5'],
        'test': ['pytest>=8', 'hypothesis>=6', 'mod_wsgi>=5', 'ruff',
                 'TracAccountManager>=0.6'],
    },
    entry_points={
        'trac.plugins': [
            'tracwsgiauth = tracwsgiauth',
            'tracwsgiauth.accounts = tracwsgiauth.accounts',
            'tracwsgiauth.admin = tracwsgiauth.admin',
            'tracwsgiauth.appadmin = tracwsgiauth.appadmin',
            'tracwsgiauth.apppasswords = tracwsgiauth.apppasswords',
            'tracwsgiauth.appprefs = tracwsgiauth.appprefs',
            'tracwsgiauth.deploy = tracwsgiauth.deploy',
            'tracwsgiauth.explain = tracwsgiauth.explain',
            'tracwsgiauth.repoperm = tracwsgiauth.repoperm',
            'tracwsgiauth.serve = tracwsgiauth.serve',
            'tracwsgiauth.sessions = tracwsgiauth.sessions',
        ],
    },
    classifiers=[
        'Framework :: Trac',
        'Programming Language :: Python :: 3',
    ],
)
