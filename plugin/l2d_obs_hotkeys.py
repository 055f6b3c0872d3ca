"""l2d-obs in OBS Studio (Tools -> Scripts -> +, pick this file): a panel and hotkeys.

The panel (this script's properties in Tools -> Scripts) starts and stops the daemon (it launches
`l2d-obs start` with the options chosen there, as a detached process logging to the state folder),
lists the running daemon's styles with the active one marked (picking one switches), toggles bypass
(the raw camera, the engine idle) and shows a status line: stopped / loading with progress / running
with fps and latency / the last error, in the daemon's own words. docs/obs-panel.md explains each field.

Hotkeys: one per style profile ("Live2Diff: vangogh", ...), "Live2Diff: next style" / "previous style",
and "l2d-obs: start", "l2d-obs: stop", "l2d-obs: bypass" (the panel's buttons). Bind them in
Settings -> Hotkeys; the bindings are saved with the script's settings and come back when OBS restarts.

The daemon writes its address and a fresh token to its control file at every start; the script reads
that file for each request, so nothing needs configuring on the machine that runs both. Settings can
override the control file's path, or give an address and token by hand.

Runs inside OBS's embedded Python: standard library only. Network calls happen on short-lived worker
threads so a slow or absent daemon never freezes OBS; a 1 s timer only reads what they found.
"""

import json
import os
import shlex
import shutil
import signal
import subprocess
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

import obspython as obs  # provided by OBS

DEFAULT_PROFILES = ["toon", "pencil", "vangogh", "cartoon", "zaum"]  # when no profile folder is found
HOTKEY_PREFIX = "l2d_obs.style."
NEXT_NAME = "l2d_obs.next"
PREVIOUS_NAME = "l2d_obs.previous"
START_NAME, STOP_NAME, BYPASS_NAME = "l2d_obs.start", "l2d_obs.stop", "l2d_obs.bypass"
POLL_MS = 1000
STOP_GRACE_S = 2.0  # after POST /stop, how long the daemon we started gets before it is terminated
DAEMON_LOG = "obs-panel-daemon.log"  # in the state folder, next to the control file

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
    # The panel. Worker threads write "daemon"/"styles"; the timer (OBS's thread) reads them.
    "launch": {},  # the panel's start options (command, profile, source, output, extra, obs port/password)
    "child": None,  # the l2d-obs process this script started (subprocess.Popen), until it is reaped
    "child_exit": None,  # (exit code, log path) of the last child that ended
    "daemon": None,  # the running daemon's last GET /status, None when none answers
    "styles": [],  # GET /profiles of the running daemon
    "styles_at": 0.0,
    "last_error": "",
    "status_text": "stopped",
    "status_said": None,  # the last state written to the script log (each change is logged once)
    "styles_said": None,
    "polling": False,
    "polled": False,  # nothing is shown or logged before the first poll has answered
    "timer": False,
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
        return "daemon refused {}: {}".format(profile, _reason(exc))
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
        ok = result.startswith("switching")
        _state["last_error"] = "" if ok else result
        _log(obs.LOG_INFO if ok else obs.LOG_WARNING, result)

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


# --- the panel: start / stop / status / bypass -----------------------------------------------------


def control_file_path():
    return _state["control_file"] or default_control_file()


def state_folder():
    return Path(control_file_path()).expanduser().parent


def launch_command(options):
    """(argv, env changes) for `l2d-obs start` with the panel's options. No secret goes on the command
    line (others can read it in `ps`): the OBS password travels in the child's environment, and only
    when typed into the panel (otherwise the daemon reads its config file). The state folder is the
    one whose control file this script reads, so the script finds the daemon it started."""
    command = (options.get("command") or "").strip() or shutil.which("l2d-obs") or ""
    if not command:
        raise ValueError("the l2d-obs command was not found on OBS's PATH; set 'l2d-obs command' in the panel "
                         "to its full path (run 'which l2d-obs' in a terminal)")
    argv = [command, "start"]
    if (options.get("profile") or "").strip():
        argv += ["--profile", options["profile"].strip()]
    if (options.get("source") or "").strip():
        argv += ["--source", options["source"].strip()]
    for output in parse_profiles(options.get("output")):  # comma-separated, like the style list
        argv += ["--output", output]
    try:
        argv += shlex.split(options.get("extra") or "")
    except ValueError as exc:
        raise ValueError("'More options' is not a valid command line ({})".format(exc)) from None
    env = {"L2D_STATE_DIR": str(state_folder())}
    if options.get("obs_port"):
        env["L2D_OBS_PORT"] = str(int(options["obs_port"]))
    if options.get("obs_password"):
        env["L2D_OBS_PASSWORD"] = options["obs_password"]
    return argv, env


def _pid_alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:  # an exited child nobody reaped yet (a zombie) is not running
        return Path("/proc/{}/stat".format(pid)).read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return True


def _reap_child():
    """Forget the child once it has exited, keeping its exit code for the status line."""
    child = _state["child"]
    if child is not None and child.poll() is not None:
        _state["child"] = None
        _state["child_exit"] = (child.returncode, _state.get("child_log"))
        if child.returncode not in (0, 130, -signal.SIGTERM):
            _state["last_error"] = last_error_in_log(_state.get("child_log")) or \
                "l2d-obs exited with status {}; see {}".format(child.returncode, _state.get("child_log"))


def last_error_in_log(path):
    """The daemon's own one-line reason ("l2d-obs: error: ...") from the end of its log file."""
    try:
        with open(path, "rb") as fh:
            fh.seek(0, os.SEEK_END)
            fh.seek(max(0, fh.tell() - 16384))
            lines = fh.read().decode("utf-8", "replace").splitlines()
    except (OSError, TypeError):
        return ""
    for line in reversed(lines):
        if "l2d-obs: error:" in line:
            return line.split("l2d-obs: error:", 1)[1].strip()
    return ""


def _answering_daemon():
    try:
        return _call("GET", "/status", None, daemon_endpoint())
    except (OSError, ValueError, KeyError, urllib.error.URLError):
        return None


def start_daemon():
    """Launch `l2d-obs start` detached, its output in the state folder's log. Returns a log line."""
    _reap_child()
    running = _answering_daemon()
    if running is not None:
        return "a daemon is already running (pid {}, {}); stop it first".format(running.get("pid"), running.get("profile"))
    if _state["child"] is not None:
        return "the daemon started from this panel (pid {}) is still starting".format(_state["child"].pid)
    try:
        argv, extra_env = launch_command(_state["launch"])
    except ValueError as exc:
        _state["last_error"] = str(exc)
        return "cannot start: {}".format(exc)
    folder = state_folder()
    log_path = folder / DAEMON_LOG
    try:
        folder.mkdir(parents=True, exist_ok=True, mode=0o700)
        log_fd = os.open(str(log_path), os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    except OSError as exc:
        _state["last_error"] = "cannot write the daemon's log {} ({})".format(log_path, exc.strerror)
        return "cannot start: " + _state["last_error"]
    env = dict(os.environ, **extra_env)
    try:
        with os.fdopen(log_fd, "ab") as log_file:
            log_file.write("\n--- {} started from OBS: {}\n".format(time.strftime("%Y-%m-%d %H:%M:%S"),
                                                                    " ".join(shlex.quote(a) for a in argv)).encode())
            log_file.flush()
            # A session of its own: OBS's signals and a closing OBS terminal do not reach it.
            child = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=log_file, stderr=subprocess.STDOUT,
                                     env=env, start_new_session=True, close_fds=True)
    except OSError as exc:
        _state["last_error"] = "cannot run {} ({}); set 'l2d-obs command' in the panel".format(argv[0], exc.strerror)
        return "cannot start: " + _state["last_error"]
    _state["child"], _state["child_log"], _state["last_error"] = child, str(log_path), ""
    return "started {} (pid {}); its log: {}".format(" ".join(shlex.quote(a) for a in argv), child.pid, log_path)


def stop_daemon():
    """POST /stop; the daemon we started is terminated if it has not exited within STOP_GRACE_S."""
    started = time.monotonic()
    child = _state["child"]
    running = _answering_daemon()
    pid = running.get("pid") if running else (child.pid if child is not None else None)
    if pid is None:
        return "no running l2d-obs daemon to stop"
    if running is not None:
        try:
            _call("POST", "/stop")
        except (OSError, ValueError, KeyError, urllib.error.URLError) as exc:
            _log(obs.LOG_WARNING, "stop request failed ({}); terminating".format(exc))

    def gone():
        return child.poll() is not None if child is not None and child.pid == pid else not _pid_alive(pid)

    deadline = started + STOP_GRACE_S
    while not gone() and time.monotonic() < deadline:
        time.sleep(0.05)
    if not gone():
        if child is None or child.pid != pid:
            return "the daemon (pid {}) did not exit within {:.0f} s; stop it with 'kill {}'".format(pid, STOP_GRACE_S, pid)
        child.terminate()
        try:
            child.wait(2)
        except subprocess.TimeoutExpired:
            child.kill()
            child.wait(2)
        return "terminated the daemon (pid {}) after {:.1f} s".format(pid, time.monotonic() - started)
    return "stopped the daemon (pid {}) in {:.2f} s".format(pid, time.monotonic() - started)


def set_bypass(on=None):
    """Bypass on/off (None: toggle). Returns a log line."""
    try:
        endpoint = daemon_endpoint()
        if on is None:
            on = not _call("GET", "/status", None, endpoint).get("bypass", False)
        _call("POST", "/bypass", {"on": bool(on)}, endpoint)
    except urllib.error.HTTPError as exc:
        return "daemon refused bypass: {}".format(_reason(exc))
    except (OSError, ValueError, KeyError, urllib.error.URLError) as exc:
        return "no running l2d-obs daemon for bypass ({}); start it first".format(exc)
    if _state["daemon"] is not None:
        _state["daemon"]["bypass"] = bool(on)
    return "bypass on: the raw camera goes out, the engine is idle" if on else "bypass off: styling resumes"


def _reason(exc):
    try:
        return json.loads(exc.read().decode("utf-8")).get("error", exc.reason)
    except ValueError:
        return exc.reason


def describe(status, child, last_error):
    """(state, text) for the panel: the state word decides when the script log hears of a change;
    the text is what the panel shows (it changes with fps and latency)."""
    if status is None:
        if child is not None:
            state, text = "starting", "starting (pid {})".format(child.pid)
        else:
            state, text = "stopped", "stopped"
    else:
        phase = status.get("phase") or status.get("state") or "running"
        profile = status.get("profile") or "?"
        if phase in ("starting", "loading"):
            loading = status.get("loading") or {}
            state = "loading"
            text = "loading: {} {:.0%}".format(loading.get("step") or phase, float(loading.get("progress") or 0))
        elif phase == "warming":
            state, text = "warming", "warming up · " + profile
        elif phase == "running":
            state = "running"
            parts = ["running", profile, "{:.1f} fps".format(float(status.get("fps_out") or 0))]
            if status.get("frames_published"):
                parts.append("{:.0f} ms".format(float(status.get("latency_ms") or 0)))
            if status.get("bypass"):
                parts.append("bypass (raw camera)")
            if status.get("source_state") not in (None, "live"):
                parts.append("camera " + str(status["source_state"]))
            text = " · ".join(parts)
            state += " " + profile + (" bypass" if status.get("bypass") else "")
        else:
            state, text = phase, phase
        switch = status.get("switch") or {}
        if switch.get("state") == "failed" and not last_error:
            last_error = "switching to {} failed: {}".format(switch.get("profile"), switch.get("error"))
    if last_error:
        text += "\n" + last_error
    return state, text


def _poll():
    """Worker thread: what the daemon says now."""
    try:
        status = _answering_daemon()
        _state["daemon"] = status
        if status is not None:
            active = status.get("profile")
            stale = time.monotonic() - _state["styles_at"] > 10 or not _state["styles"] or \
                active != _state.get("styles_active")
            if stale:
                try:
                    listed = _call("GET", "/profiles")
                    _state["styles"], _state["styles_active"] = list(listed.get("profiles") or []), listed.get("active")
                    _state["styles_at"] = time.monotonic()
                except (OSError, ValueError, KeyError, urllib.error.URLError):
                    pass
        else:
            _state["styles"], _state["styles_active"] = [], None
    finally:
        _state["polling"], _state["polled"] = False, True


def style_list_line(styles, active):
    return ", ".join(name + (" (active)" if name == active else "") for name in styles)


def _tick():
    """OBS's timer: reap the child, start a poll, log what changed (the panel reads it when drawn)."""
    _reap_child()
    if not _state["polling"]:
        _state["polling"] = True
        threading.Thread(target=_poll, name="l2d-obs-poll", daemon=True).start()
    if not _state["polled"]:
        return
    status = _state["daemon"]
    state, text = describe(status, _state["child"], _state["last_error"])
    _state["status_text"] = text
    said = state + "\n" + _state["last_error"]
    if said != _state["status_said"]:
        _state["status_said"] = said
        _log(obs.LOG_WARNING if _state["last_error"] else obs.LOG_INFO, "status: " + text.replace("\n", " | "))
    styles = style_list_line(_state["styles"], _state.get("styles_active"))
    if styles and styles != _state["styles_said"]:
        _state["styles_said"] = styles
        _log(obs.LOG_INFO, "styles: " + styles)


def _in_background(work, name):
    def run():
        result = work()
        warn = result.startswith(("cannot", "no running", "daemon refused", "the daemon", "terminated"))
        _log(obs.LOG_WARNING if warn else obs.LOG_INFO, result)

    threading.Thread(target=run, name=name, daemon=True).start()


def _show_now(props, text=None):
    """Called by OBS on its UI thread just before it draws the panel (the properties are built, or a
    button's callback returns True): the status, bypass box and style list from the last poll. OBS
    redraws the same properties, it does not ask for new ones, so the list is filled in again here.
    Settings are only written here, on the thread that reads them, never from the timer."""
    if props is None:  # a hotkey: no panel to draw
        return False
    settings = _state["settings"]
    status = _state["daemon"] or {}
    if settings is not None:
        obs.obs_data_set_string(settings, "status", text or _state["status_text"])
        obs.obs_data_set_bool(settings, "bypass", bool(status.get("bypass")))
        obs.obs_data_set_string(settings, "style", status.get("profile") or "")
    style = obs.obs_properties_get(props, "style")
    if style is not None:
        obs.obs_property_list_clear(style)
        active = _state.get("styles_active")
        for name in _state["styles"]:
            obs.obs_property_list_add_string(style, ("\u25cf " + name + " (active)") if name == active else name, name)
    return True


_actions = threading.Lock()  # one start or stop at a time, however fast the button is pressed


def _one_at_a_time(action):
    def run():
        with _actions:
            return action()

    return run


def on_start(props=None, _prop=None):
    _in_background(_one_at_a_time(start_daemon), "l2d-obs-start")
    return _show_now(props, "starting ..." if _state["daemon"] is None else None)


def on_stop(props=None, _prop=None):
    _in_background(_one_at_a_time(stop_daemon), "l2d-obs-stop")
    return _show_now(props, "stopping ..." if _state["daemon"] is not None else None)


def on_refresh(props=None, _prop=None):
    return _show_now(props)


def _on_bypass_property(_props, _prop, settings):
    """The panel's bypass box: act only when it differs from what the daemon does (OBS also calls this
    when it draws the panel)."""
    wanted = obs.obs_data_get_bool(settings, "bypass")
    status = _state["daemon"]
    if status is not None and bool(status.get("bypass")) != wanted:
        _in_background(lambda: set_bypass(wanted), "l2d-obs-bypass")
    return False


def _on_style_property(_props, _prop, settings):
    """Picking a style in the list switches to it (not when OBS merely redraws the active one)."""
    wanted = obs.obs_data_get_string(settings, "style")
    status = _state["daemon"]
    if wanted and status is not None and wanted != status.get("profile"):
        status["profile"] = wanted  # asked once per pick, even before the next poll
        switch_async(wanted)
    return False


def _hotkey(action):
    def on_hotkey(pressed):
        if pressed:
            action()

    return on_hotkey


def _video_sources():
    """obs:NAME for each video input in OBS, for the camera list."""
    names = []
    sources = obs.obs_enum_sources()
    try:
        for source in sources or []:
            if obs.obs_source_get_output_flags(source) & obs.OBS_SOURCE_VIDEO:
                names.append("obs:" + obs.obs_source_get_name(source))
    finally:
        obs.source_list_release(sources)
    return sorted(names)


def _editable_list(props, name, label, choices):
    prop = obs.obs_properties_add_list(props, name, label, obs.OBS_COMBO_TYPE_EDITABLE, obs.OBS_COMBO_FORMAT_STRING)
    for choice in choices:
        obs.obs_property_list_add_string(prop, choice, choice)
    return prop


def _panel_properties(props):
    status = obs.obs_properties_add_text(props, "status", "Status", obs.OBS_TEXT_INFO)
    if _state["last_error"]:
        obs.obs_property_text_set_info_type(status, obs.OBS_TEXT_INFO_ERROR)
    obs.obs_properties_add_button(props, "start_button", "Start", on_start)
    obs.obs_properties_add_button(props, "stop_button", "Stop", on_stop)
    obs.obs_properties_add_button(props, "refresh_button", "Refresh panel", on_refresh)
    style = obs.obs_properties_add_list(props, "style", "Style (from the running daemon)", obs.OBS_COMBO_TYPE_LIST,
                                        obs.OBS_COMBO_FORMAT_STRING)
    obs.obs_property_set_modified_callback(style, _on_style_property)
    bypass = obs.obs_properties_add_bool(props, "bypass", "Bypass (raw camera, engine idle)")
    obs.obs_property_set_modified_callback(bypass, _on_bypass_property)
    obs.obs_properties_add_text(props, "start_profile", "Style at start", obs.OBS_TEXT_DEFAULT)
    _editable_list(props, "source", "Camera (source)", _video_sources() + ["device:0", "pattern"])
    _editable_list(props, "output", "Output (comma-separated)", ["obs", "vcam", "mjpeg", "null"])
    obs.obs_properties_add_text(props, "extra_args", "More options for l2d-obs start", obs.OBS_TEXT_DEFAULT)
    obs.obs_properties_add_path(props, "command", "l2d-obs command", obs.OBS_PATH_FILE, "", None)
    obs.obs_properties_add_int(props, "obs_port", "OBS websocket port (0 = config file / 4455)", 0, 65535, 1)
    obs.obs_properties_add_text(props, "obs_password", "OBS websocket password (empty = config file)", obs.OBS_TEXT_PASSWORD)
    _show_now(props)


# --- OBS script API -------------------------------------------------------------------------------


def script_description():
    return (
        "<b>l2d-obs</b>: start and stop the Live2Diff daemon, pick its style, bypass it, see its status. "
        "Hotkeys in Settings &rarr; Hotkeys (<i>Live2Diff:</i> styles, next/previous; <i>l2d-obs:</i> start, "
        "stop, bypass). The panel redraws when you press one of its buttons; the script log has every change."
    )


LAUNCH_FIELDS = {  # panel setting -> start option (launch_command)
    "command": "command", "start_profile": "profile", "source": "source", "output": "output",
    "extra_args": "extra", "obs_password": "obs_password",
}


def script_defaults(settings):
    obs.obs_data_set_default_string(settings, "profiles", "")
    obs.obs_data_set_default_string(settings, "control_file", "")
    obs.obs_data_set_default_string(settings, "address", "")
    obs.obs_data_set_default_string(settings, "token", "")
    obs.obs_data_set_default_string(settings, "command", shutil.which("l2d-obs") or "")
    obs.obs_data_set_default_string(settings, "start_profile", "toon")
    obs.obs_data_set_default_string(settings, "source", "device:0")
    obs.obs_data_set_default_string(settings, "output", "obs")
    obs.obs_data_set_default_string(settings, "extra_args", "")
    obs.obs_data_set_default_int(settings, "obs_port", 0)
    obs.obs_data_set_default_string(settings, "obs_password", "")


def script_properties():
    props = obs.obs_properties_create()
    _panel_properties(props)
    obs.obs_properties_add_text(props, "profiles", "Styles for hotkeys (comma-separated; empty = all found)", obs.OBS_TEXT_DEFAULT)
    obs.obs_properties_add_text(props, "control_file", "Daemon control file (empty = default)", obs.OBS_TEXT_DEFAULT)
    obs.obs_properties_add_text(props, "address", "Daemon address host:port (empty = from control file)", obs.OBS_TEXT_DEFAULT)
    obs.obs_properties_add_text(props, "token", "Control token (empty = from control file)", obs.OBS_TEXT_PASSWORD)
    return props


def script_update(settings):
    _state["control_file"] = obs.obs_data_get_string(settings, "control_file")
    _state["address"] = obs.obs_data_get_string(settings, "address")
    _state["token"] = obs.obs_data_get_string(settings, "token")
    launch = {option: obs.obs_data_get_string(settings, field) for field, option in LAUNCH_FIELDS.items()}
    launch["obs_port"] = obs.obs_data_get_int(settings, "obs_port")
    _state["launch"] = launch


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
    _register(START_NAME, "l2d-obs: start", _hotkey(on_start), settings)
    _register(STOP_NAME, "l2d-obs: stop", _hotkey(on_stop), settings)
    _register(BYPASS_NAME, "l2d-obs: bypass", _hotkey(lambda: _in_background(set_bypass, "l2d-obs-bypass")), settings)
    _log(obs.LOG_INFO, "registered hotkeys for styles: " + ", ".join(profiles))
    obs.obs_data_set_bool(settings, "bypass", False)  # live state, not a preference: the poll fills it in
    obs.obs_data_set_string(settings, "style", "")
    obs.obs_data_set_string(settings, "status", "stopped")
    obs.timer_add(_tick, POLL_MS)
    _state["timer"] = True


def script_save(settings):
    for name, hotkey_id in _state["hotkeys"].items():
        saved = obs.obs_hotkey_save(hotkey_id)
        obs.obs_data_set_array(settings, name, saved)
        obs.obs_data_array_release(saved)


def script_unload():
    # OBS drops a script's hotkeys and their callbacks when it unloads the script.
    _state["hotkeys"] = {}
    if _state["timer"]:
        obs.timer_remove(_tick)
        _state["timer"] = False
    # A daemon started from the panel ends with OBS (or the script): SIGTERM is its clean stop, the same
    # as `l2d-obs stop`, and returns at once so OBS does not wait for it.
    child = _state["child"]
    if child is not None and child.poll() is None:
        child.send_signal(signal.SIGTERM)
        _log(obs.LOG_INFO, "stopping the daemon this panel started (pid {})".format(child.pid))
