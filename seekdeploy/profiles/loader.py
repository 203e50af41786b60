"""Find, read and validate hardware profiles.

A profile is named either by a path to a YAML file or by a name/alias looked up in the search
folders, first `./profiles/` of the current directory (where users drop their own targets, which
override shipped ones of the same name) and then the profiles shipped inside the package
(`seekdeploy.shipped_profiles`). YAML is parsed with `yaml.safe_load` only; a file that cannot be
read or parsed is a `ProfileError` naming the file and what to change, and an invalid one is a
`ProfileError` listing every problem of the file (see `_validate.py`).
"""

from __future__ import annotations

import dataclasses
import importlib.util
from pathlib import Path
from typing import Any

import yaml

from seekdeploy import layout
from seekdeploy.errors import ProfileError, did_you_mean
from seekdeploy.profiles._validate import validate_profile
from seekdeploy.profiles.schema import HardwareProfile

PROFILE_SUFFIXES = (".yaml", ".yml")
SHIPPED_PACKAGE = "seekdeploy.shipped_profiles"
_MAX_PROFILE_BYTES = 1 << 20  # a profile is a few KiB; refuse anything absurd before parsing


@dataclasses.dataclass(frozen=True)
class ProfileScan:
    """Every profile found in the search folders, plus the files that failed to load."""

    profiles: tuple[HardwareProfile, ...]
    errors: tuple[tuple[Path, ProfileError], ...]


def profile_search_dirs() -> list[Path]:
    """The folders searched for profiles by name, in priority order (missing ones included).

    `./profiles/` of the current directory comes first so a user file overrides a shipped profile
    of the same name; the shipped folder is skipped when it is that same folder (a source checkout).
    """
    user_dir = Path.cwd() / layout.PROFILES_DIR
    shipped_dir = _shipped_dir()
    if _same_dir(user_dir, shipped_dir):
        return [shipped_dir]
    return [user_dir, shipped_dir]


def _shipped_dir() -> Path:
    # A real folder, not a Traversable: wheels install unzipped, and the editable install maps
    # the package onto the checkout's `profiles/` folder.
    spec = importlib.util.find_spec(SHIPPED_PACKAGE)
    locations = list(spec.submodule_search_locations or []) if spec is not None else []
    if not locations:
        raise ProfileError(
            f"the shipped profiles ({SHIPPED_PACKAGE}) are missing from this installation; "
            "reinstall seekdeploy (pip install -e '.[dev]' in a checkout)"
        )
    return Path(locations[0])


def load_profile(name_or_path: str | Path) -> HardwareProfile:
    """Load a profile by file path, or by name or alias from `profile_search_dirs()`.

    A `Path`, or a string that ends in .yaml/.yml or contains a path separator, is read as a file;
    anything else is a name matched (case-insensitively) against every profile's name and aliases.
    Raises `ProfileError` for a missing, unreadable or invalid file and for an unknown name (with
    the available names and a suggestion).
    """
    if _looks_like_path(name_or_path):
        path = Path(name_or_path)
        if not path.exists() and path.parent == Path("."):
            _raise_if_meant_as_name(path)
        return load_profile_file(path)
    name = str(name_or_path).strip()
    skipped: list[tuple[Path, ProfileError]] = []
    for folder in profile_search_dirs():
        scan = _scan_dir(folder)
        for path, error in scan.errors:
            if path.stem.casefold() == name.casefold():
                raise error  # the user asked for exactly this broken file: show why it is broken
        skipped.extend(scan.errors)
        for profile in scan.profiles:
            if name.casefold() in _names_of(profile):
                return profile
    raise _unknown_name_error(name, skipped)


def load_profile_file(path: Path) -> HardwareProfile:
    """Read and validate one profile YAML file; raises `ProfileError` naming the file."""
    if not path.is_file():
        where = "is a folder" if path.is_dir() else "does not exist"
        raise ProfileError(
            f"profile file {path} {where}; pass an existing .yaml file or a profile name "
            "(see `seekdeploy profiles list`)"
        )
    profile = parse_profile(_read_yaml(path), source=str(path))
    return dataclasses.replace(profile, source_path=path)


def parse_profile(data: Any, source: str = "<data>") -> HardwareProfile:
    """Validate already-parsed profile data (the YAML file's layout, e.g. `profile.to_json()`
    without `source_path`) into a `HardwareProfile`; `source` names it in error messages.
    Raises one `ProfileError` listing every problem of the data (`.problems`), not just the first.
    """
    return validate_profile(data, source)


def scan_profiles() -> ProfileScan:
    """Every valid profile in the search folders (a user profile hides a shipped one of the same
    name) and every file that failed to load, so a listing can show both."""
    seen: set[str] = set()
    profiles: list[HardwareProfile] = []
    errors: list[tuple[Path, ProfileError]] = []
    for folder in profile_search_dirs():
        scan = _scan_dir(folder)
        errors.extend(scan.errors)
        for profile in scan.profiles:
            if profile.name.casefold() not in seen:
                seen.add(profile.name.casefold())
                profiles.append(profile)
    return ProfileScan(tuple(profiles), tuple(errors))


def list_profiles() -> list[HardwareProfile]:
    """Every profile in the search folders, sorted by name; raises `ProfileError` if any file there
    is invalid (use `scan_profiles()` to get the valid ones and the errors separately)."""
    scan = scan_profiles()
    if scan.errors:
        raise scan.errors[0][1]
    return sorted(scan.profiles, key=lambda profile: profile.name)


def _scan_dir(folder: Path) -> ProfileScan:
    if not folder.is_dir():
        return ProfileScan((), ())
    profiles: list[HardwareProfile] = []
    errors: list[tuple[Path, ProfileError]] = []
    claimed: dict[str, Path] = {}
    for path in sorted(p for p in folder.iterdir() if p.suffix in PROFILE_SUFFIXES):
        try:
            profile = load_profile_file(path)
        except ProfileError as error:
            errors.append((path, error))
            continue
        clash = next((claimed[n] for n in _names_of(profile) if n in claimed), None)
        if clash is not None:
            errors.append((path, ProfileError(
                f"profile {path} uses a name or alias already used by {clash}; "
                "rename one of them so every name and alias in a folder is unique"
            )))
            continue
        claimed.update(dict.fromkeys(_names_of(profile), path))
        profiles.append(profile)
    return ProfileScan(tuple(profiles), tuple(errors))


def _read_yaml(path: Path) -> Any:
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise ProfileError(f"cannot read profile {path}: {exc.strerror or exc}") from exc
    if len(raw) > _MAX_PROFILE_BYTES:
        raise ProfileError(f"profile {path} is {len(raw)} bytes; a profile is a small YAML file")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        problem = f"{exc.reason} at byte {exc.start}"
        raise ProfileError(f"profile {path} is not UTF-8 text ({problem})") from exc
    try:
        return yaml.safe_load(text)
    except yaml.constructor.ConstructorError as exc:
        raise ProfileError(
            f"profile {path}{_line_of(exc)}: {exc.problem}; profiles are plain YAML "
            "(tags such as !!python/object are refused and never run)"
        ) from exc
    except yaml.YAMLError as exc:
        problem = getattr(exc, "problem", None) or str(exc)
        raise ProfileError(f"profile {path}{_line_of(exc)} is not valid YAML: {problem}") from exc


def _line_of(exc: yaml.YAMLError) -> str:
    mark = getattr(exc, "problem_mark", None)
    if mark is None:
        return ""
    where = f", line {mark.line + 1}, column {mark.column + 1}"
    # An unclosed bracket or quote is reported where the file ends; say where it was opened.
    context = getattr(exc, "context_mark", None)
    if context is not None and context.line != mark.line:
        where += f" ({exc.context} at line {context.line + 1})"
    return where


def _raise_if_meant_as_name(path: Path) -> None:
    # `--profile x86-cpu.yaml` with no such file here most likely means the shipped profile.
    known = {n for p in scan_profiles().profiles for n in _names_of(p)}
    if path.stem.casefold() in known:
        raise ProfileError(
            f"profile file {path} does not exist; to use the profile named {path.stem!r}, "
            f"pass the name without the suffix (--profile {path.stem})"
        )


def _unknown_name_error(name: str, skipped: list[tuple[Path, ProfileError]]) -> ProfileError:
    profiles = sorted(scan_profiles().profiles, key=lambda profile: profile.name)
    known = [n for p in profiles for n in (p.name, *p.aliases)]
    listing = ", ".join(
        p.name + (f" ({', '.join(p.aliases)})" if p.aliases else "") for p in profiles
    )
    folders = ", ".join(str(folder) for folder in profile_search_dirs())
    message = (
        f"unknown profile {name!r}{did_you_mean(name, known)}; available: "
        f"{listing or 'none'} (searched {folders}). Pass a name from "
        "`seekdeploy profiles list` or a path to a .yaml file"
    )
    if skipped:
        files = ", ".join(str(path) for path, _ in skipped)
        message += (
            f"; invalid files were skipped ({files}): "
            "check them with `seekdeploy profiles validate FILE`"
        )
    return ProfileError(message)


def _names_of(profile: HardwareProfile) -> tuple[str, ...]:
    return tuple(n.casefold() for n in (profile.name, *profile.aliases))


def _looks_like_path(name_or_path: str | Path) -> bool:
    if isinstance(name_or_path, Path):
        return True
    text = str(name_or_path)
    return text.endswith(PROFILE_SUFFIXES) or "/" in text or "\\" in text


def _same_dir(first: Path, second: Path) -> bool:
    try:
        return first.is_dir() and second.is_dir() and first.samefile(second)
    except OSError:
        return False
