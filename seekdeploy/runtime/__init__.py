"""Latency runtime: timing protocol, runners, environment capture, results JSON and verdicts.

`timing`, `environment`, `result_schema` and `_cuda` import only the standard library (and numpy
for `timing`) so the remote agent can ship them to a device. Import the submodules directly; this
package imports nothing so that `import seekdeploy.runtime` stays light.
"""
