"""One tenant's migration run: Rust plans and executes, Django compiles SQL and runs Python.

The order of events mirrors Django's ``migrate`` command: plan, header, ``pre_migrate``,
migrations, ``post_migrate``. Everything printed goes through the command's ``stdout`` so
``call_command`` can capture it.

- ``options``: what a run is asked to do (``MigrateOptions``) and the checks of its arguments;
- ``flow``: one tenant's run, in Django's order (``migrate_tenant``, ``migrate_record``);
- ``shared``: what one process computes once for every tenant (``Shared``, ``DJANGO_LOCK``);
- ``hooks``, ``lazy``: what the Rust executor calls back (``DjangoHooks``, ``LazyHooks``);
- ``statements``: the statements Django runs for a step (timeouts, failures, server pid);
- ``signals``: ``pre_migrate`` and ``post_migrate``, for the tenant apps.
"""
