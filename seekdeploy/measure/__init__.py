"""Measuring: the stage between export and report, here or on devices.

- `profile`: the stage itself, behind `seekdeploy profile` and the pipeline's profile step:
  every role of an export, in interleaved windows, here or on hosts in parallel, judged against
  the profile's budgets (`ProfileSettings`, `profile_local`, `profile_on_hosts`).
- `local`: one model, one runner, in this process (`ProfileRequest`, `profile_model`); ONNX
  models are timed by the agent in a child process instead (`seekdeploy.remote.local_agent`).
- `remote`: one export on SSH hosts through the standalone agent (`profile_remote`).

The timing protocol, results schema and verdicts they share are `seekdeploy.runtime`; the
runtimes are `seekdeploy.backends`. This package imports nothing, so `import seekdeploy.measure`
stays light.
"""
