"""Package discovery that pyproject.toml alone cannot express.

The shipped hardware profiles live in the top-level `profiles/` folder (where users see and copy
them) but install as the package `seekdeploy.shipped_profiles`. setuptools' `packages.find` only
discovers folders under their own names, so the mapped package is added here explicitly, beside
every `seekdeploy*` package found automatically (new subpackages need no edit here).
"""

from setuptools import find_namespace_packages, setup

PACKAGES = find_namespace_packages(
    include=["seekdeploy", "seekdeploy.*"], exclude=["*.__pycache__"]
)

setup(
    packages=[*PACKAGES, "seekdeploy.shipped_profiles"],
    package_dir={"seekdeploy.shipped_profiles": "profiles"},
)
