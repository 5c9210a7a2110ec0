"""Helpers shared by the test modules, each module named after what it holds:

- :mod:`support.app`: one real app (server and worker) on a real store, and the fixtures of a module
  that shares one (``app_fixtures``), or of a test that needs its own (``isolated``);
- :mod:`support.http`: requests and replies through HTTP: ``post``, ``read``, ``assert_problem``,
  ``barrier``, and reading what is stored (``stored``, ``read_one``, ``errors``, ``nothing_stored``);
- :mod:`support.records`: record builders (``minimal``).

The suite-wide fixtures (the store, ``settings``, ``make_tenant``, a ``patron serve`` subprocess) and
``push`` / ``wait_applied`` stay in ``conftest.py``, which registers :mod:`support.app` as a plugin so
that its fixtures are found in every module. Import these modules as ``support.<name>`` (the tests
directory is on ``sys.path``, as it is for ``conftest``).
"""
