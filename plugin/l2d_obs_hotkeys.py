"""l2d-obs style hotkeys for OBS Studio (Tools -> Scripts -> +, pick this file).

Registers one hotkey per style profile ("Live2Diff: vangogh", ...) plus "Live2Diff: next style" and
"Live2Diff: previous style". Bind them in Settings -> Hotkeys; the bindings are saved with the
script's settings and come back when OBS restarts. Pressing a hotkey asks the running l2d-obs daemon
to switch style through its local control API.

The daemon writes its address and a fresh token to its control file at every start; the script reads
that file at each key press, so nothing needs configuring on the machine that runs both. Settings can
override the control file's path, or give an address and token by hand.

Runs inside OBS's embedded Python: standard library only. Network calls happen on a short-lived
worker thread so a slow or absent daemon never freezes OBS.
"""

import json
import os
import threading
import urllib.error
import urllib.request
from pathlib import Path

import obspython as obs  # provided by OBS

DEFAULT_PROFILES = ["tiny", "vangogh", "cartoon", "zaum"]
HOTKEY_PREFIX = "l2d_obs.style."
NEXT_NAME = "l2d_obs.next"
PREVIOUS_NAME = "l2d_obs.previous"

_state = {
    "settings": None,
    "profiles": [],
    "hotkeys": {},  # hotkey name -> hotkey id
    "current": None,
    "control_file": "",
    "address": "",
    "token": "",
    "last_result": "",
    "refused": {},  # style -> the daemon's last refusal, logged once
}


def _log(level, message):
    obs.script_log(level, "[l2d-obs] " + message)


def default_control_file():
    state = os.environ.get("L2D_STATE_DIR")
    if state:
        return str(Path(state).expanduser() / "control.json")
    base = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return str(Path(base) / "l2d-obs" / "control.json")


def discover_profiles():
    """Profile names from the repository next to this script and the user's profile folder."""
    folders = [Path(__file__).resolve().parent.parent / "profiles"]
    user = os.environ.get("L2D_PROFILES_DIR")
    if user:
        folders.append(Path(user).expanduser())
    else:
        base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
        folders.append(Path(base) / "l2d-obs" / "profiles")
    names = set()
    for folder in folders:
        if folder.is_dir():
            names.update(p.stem for p in folder.glob("*.toml"))
    return sorted(names) or list(DEFAULT_PROFILES)


def parse_profiles(text):
    return [name.strip() for name in (text or "").split(",") if name.strip()]


def daemon_endpoint():
    """(base URL, token) from the settings or the daemon's control file."""
    address, token = _state["address"].strip(), _state["token"].strip()
    if not address or not token:
        path = _state["control_file"] or default_control_file()
        with open(path, encoding="utf-8") as fh:
            info = json.load(fh)
        address = address or "{}:{}".format(info["host"], info["port"])
        token = token or info["token"]
    if not address.startswith("http"):
        address = "http://" + address
    return address.rstrip("/"), token


def _call(method, path, body=None, endpoint=None):
    """One request to the daemon's control API; returns the decoded JSON reply."""
    base, token = endpoint or daemon_endpoint()
    data = None if body is None else json.dumps(body).encode("utf-8")
    headers = {"Authorization": "Bearer " + token}
    if data is not None:
        headers["Content-Type"] = "application/json"
    req = urllib.request.Request(base + path, data=data, method=method, headers=headers)
    with urllib.request.urlopen(req, timeout=5) as resp:
        return json.loads(resp.read().decode("utf-8") or "{}")


def active_profile():
    """The daemon's current style (it may have changed through OBS events or the CLI)."""
    try:
        return _call("GET", "/status").get("profile") or _state["current"]
    except (OSError, ValueError, KeyError, urllib.error.URLError):
        return _state["current"]


def request_switch(profile):
    """POST /switch; returns a one-line result for the script log."""
    try:
        endpoint = daemon_endpoint()
    except (OSError, ValueError, KeyError) as exc:
        return "no running l2d-obs daemon found ({}); start it with 'l2d-obs start'".format(exc)
    try:
        _call("POST", "/switch", {"profile": profile}, endpoint)
        _state["current"] = profile
        return "switching to " + profile + _not_ready_yet(endpoint)
    except urllib.error.HTTPError as exc:
        try:
            reason = json.loads(exc.read().decode("utf-8")).get("error", exc.reason)
        except ValueError:
            reason = exc.reason
        return "daemon refused {}: {}".format(profile, reason)
    except (urllib.error.URLError, OSError, ValueError) as exc:
        return "cannot reach the l2d-obs daemon at {}: {}".format(endpoint[0], exc)


def _not_ready_yet(endpoint):
    """' (...)' when the daemon is still starting: the switch is queued and follows once it runs."""
    try:
        st = _call("GET", "/status", None, endpoint)
    except (OSError, ValueError, KeyError, urllib.error.URLError):
        return ""
    phase = st.get("phase")
    if phase not in ("starting", "loading", "warming"):
        return ""
    loading = st.get("loading") or {}
    detail = "{} {:.0%}".format(loading.get("step", ""), float(loading.get("progress") or 0)).strip()
    doing = "loading {} ({})".format(st.get("profile"), detail) if phase != "warming" else "warming up"
    return " once the daemon is ready (it is {})".format(doing)


def _run_async(work):
    def run():
        result = work()
        _state["last_result"] = result
        _log(obs.LOG_INFO if result.startswith("switching") else obs.LOG_WARNING, result)

    threading.Thread(target=run, name="l2d-obs-switch", daemon=True).start()


def switch_async(profile):
    _run_async(lambda: request_switch(profile))


def step(offset):
    """Next/previous style, counted from the style the daemon shows now."""
    profiles = list(_state["profiles"])
    if not profiles:
        return

    _run_async(lambda: step_now(profiles, offset))


def step_now(profiles, offset):
    """Switch to the next style the daemon accepts, skipping (and saying once why) those it refuses,
    e.g. a style whose weights are not downloaded; a press never gets stuck on one."""
    current = active_profile()
    index = profiles.index(current) if current in profiles else (-1 if offset > 0 else 0)
    skipped = []
    for k in range(1, len(profiles) + 1):
        candidate = profiles[(index + k * offset) % len(profiles)]
        if candidate == current:
            break
        result = request_switch(candidate)
        if not result.startswith("daemon refused "):
            if skipped:
                result += " (skipped " + ", ".join(skipped) + ")"
            return result
        skipped.append(candidate)
        if _state["refused"].get(candidate) != result:  # say why once, not at every press
            _state["refused"][candidate] = result
            _log(obs.LOG_WARNING, result)
    return "no other style is usable now ({} refused); see the script log".format(", ".join(skipped) or "none")


def _make_callback(profile):
    def on_hotkey(pressed):
        if pressed:
            switch_async(profile)

    return on_hotkey


def _on_next(pressed):
    if pressed:
        step(+1)


def _on_previous(pressed):
    if pressed:
        step(-1)


# --- OBS script API -------------------------------------------------------------------------------


def script_description():
    return (
        "<b>l2d-obs style hotkeys</b><br>One hotkey per Live2Diff style (Settings &rarr; Hotkeys, "
        "look for <i>Live2Diff:</i>), plus next/previous. Needs a running <code>l2d-obs start</code>."
    )


def script_defaults(settings):
    obs.obs_data_set_default_string(settings, "profiles", "")
    obs.obs_data_set_default_string(settings, "control_file", "")
    obs.obs_data_set_default_string(settings, "address", "")
    obs.obs_data_set_default_string(settings, "token", "")


def script_properties():
    props = obs.obs_properties_create()
    obs.obs_properties_add_text(props, "profiles", "Styles (comma-separated; empty = all found)", obs.OBS_TEXT_DEFAULT)
    obs.obs_properties_add_text(props, "control_file", "Daemon control file (empty = default)", obs.OBS_TEXT_DEFAULT)
    obs.obs_properties_add_text(props, "address", "Daemon address host:port (empty = from control file)", obs.OBS_TEXT_DEFAULT)
    obs.obs_properties_add_text(props, "token", "Control token (empty = from control file)", obs.OBS_TEXT_PASSWORD)
    return props


def script_update(settings):
    _state["control_file"] = obs.obs_data_get_string(settings, "control_file")
    _state["address"] = obs.obs_data_get_string(settings, "address")
    _state["token"] = obs.obs_data_get_string(settings, "token")


def _register(name, description, callback, settings):
    hotkey_id = obs.obs_hotkey_register_frontend(name, description, callback)
    saved = obs.obs_data_get_array(settings, name)
    obs.obs_hotkey_load(hotkey_id, saved)
    obs.obs_data_array_release(saved)
    _state["hotkeys"][name] = hotkey_id


def script_load(settings):
    _state["settings"] = settings
    script_update(settings)
    profiles = parse_profiles(obs.obs_data_get_string(settings, "profiles")) or discover_profiles()
    _state["profiles"] = profiles
    # Hotkeys are registered once per load; a changed style list takes effect at the next OBS start
    # (or "Reload Scripts"), which is how OBS expects scripts to manage hotkeys.
    for profile in profiles:
        _register(HOTKEY_PREFIX + profile, "Live2Diff: " + profile, _make_callback(profile), settings)
    _register(NEXT_NAME, "Live2Diff: next style", _on_next, settings)
    _register(PREVIOUS_NAME, "Live2Diff: previous style", _on_previous, settings)
    _log(obs.LOG_INFO, "registered hotkeys for styles: " + ", ".join(profiles))


def script_save(settings):
    for name, hotkey_id in _state["hotkeys"].items():
        saved = obs.obs_hotkey_save(hotkey_id)
        obs.obs_data_set_array(settings, name, saved)
        obs.obs_data_array_release(saved)


def script_unload():
    # OBS drops a script's hotkeys and their callbacks when it unloads the script.
    _state["hotkeys"] = {}
