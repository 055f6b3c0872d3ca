"""The styled camera in place of the camera, in every scene that shows it (docs/obs-output.md).

For every scene item that shows the camera source (in any scene, nested scene or group), a *twin*
item of the output's Media Source sits directly above it with the camera item's transform (position,
rotation, scale, crop, bounds, alignment), visibility and blend mode, so whatever was above the camera
stays above the styled camera. The camera items themselves are never changed: removing the twins (one
``RemoveInput`` of the Media Source) gives back exactly the scenes as they were, and a camera item
still shows through wherever the styled picture is missing (before the first frame, or a dead daemon).

``plan_mirror`` decides what to change from a listing of the scenes (pure, tested without OBS);
``SceneMirror`` lists OBS, applies the plan and is called again whenever OBS reports a scene change.
Twins are recognised by their source name alone, so the next start adopts (or removes) twins that a
crashed run left behind.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from ..obsclient import OBSClient, OBSRequestError
from ..paths import state_dir

log = logging.getLogger(__name__)

# Transform fields SetSceneItemTransform accepts (the others it reports are derived sizes).
_POSITION_FIELDS = ("positionX", "positionY", "rotation", "alignment", "boundsType", "boundsAlignment")
_CROP_FIELDS = ("cropLeft", "cropRight", "cropTop", "cropBottom")
_TOLERANCE = 1e-3


@dataclass(frozen=True)
class SceneItem:
    """One scene item as obs-websocket's GetSceneItemList reports it."""

    item_id: int
    index: int  # 0 is the bottom of the scene
    source: str
    enabled: bool
    transform: dict[str, Any]
    blend_mode: str = "OBS_BLEND_NORMAL"
    locked: bool = False

    @classmethod
    def from_obs(cls, item: dict[str, Any]) -> "SceneItem":
        return cls(int(item["sceneItemId"]), int(item["sceneItemIndex"]), str(item["sourceName"]),
                   bool(item.get("sceneItemEnabled", True)), dict(item.get("sceneItemTransform") or {}),
                   str(item.get("sceneItemBlendMode") or "OBS_BLEND_NORMAL"), bool(item.get("sceneItemLocked", False)))


@dataclass(frozen=True)
class Container:
    """A scene or a group, with its items."""

    name: str
    is_group: bool
    items: tuple[SceneItem, ...]


def size_ratio(camera: dict[str, Any], frame_width: int) -> float:
    """The camera's width over the twin's frame width (1.0 when the output has the camera's own size)."""
    source_width = float(camera.get("sourceWidth") or 0)
    return source_width / frame_width if source_width > 0 and frame_width > 0 else 1.0


def twin_transform(camera: dict[str, Any], frame_width: int) -> dict[str, Any]:
    """The transform that puts a twin, showing frames ``frame_width`` wide, exactly over the camera
    item: scale grows and crops shrink by the size ratio, so the same part of the picture lands in
    the same place."""
    ratio = size_ratio(camera, frame_width)
    out = {k: camera[k] for k in _POSITION_FIELDS if k in camera}
    out["scaleX"] = float(camera.get("scaleX", 1.0)) * ratio
    out["scaleY"] = float(camera.get("scaleY", 1.0)) * ratio
    for k in _CROP_FIELDS:
        out[k] = int(round(int(camera.get(k, 0)) / ratio))
    if camera.get("boundsType", "OBS_BOUNDS_NONE") != "OBS_BOUNDS_NONE":
        # obs-websocket refuses bounds below 1 (and ignores them without a bounds type)
        out["boundsWidth"] = max(1.0, float(camera.get("boundsWidth", 1.0)))
        out["boundsHeight"] = max(1.0, float(camera.get("boundsHeight", 1.0)))
    if "cropToBounds" in camera:  # OBS 30+
        out["cropToBounds"] = camera["cropToBounds"]
    return out


def transform_differs(current: dict[str, Any], wanted: dict[str, Any]) -> bool:
    for key, value in wanted.items():
        have = current.get(key)
        if isinstance(value, float) and isinstance(have, (int, float)):
            if abs(have - value) > _TOLERANCE * max(1.0, abs(value)):
                return True
        elif have != value:
            return True
    return False


@dataclass
class ContainerPlan:
    """What to change in one scene or group. Twins to create are named by the camera item they sit
    on; ``updates`` are existing twins whose transform, visibility or blend mode must follow."""

    container: str
    is_group: bool
    remove: list[int] = field(default_factory=list)
    create_above: list[SceneItem] = field(default_factory=list)
    updates: list[tuple[int, SceneItem]] = field(default_factory=list)  # (twin id, its camera item)

    @property
    def empty(self) -> bool:
        return not (self.remove or self.create_above or self.updates)


def plan_container(container: Container, camera: str, twin: str, frame_width: int) -> ContainerPlan:
    """Pair each camera item with the twin directly above it; create the missing twins, drop twins
    that sit on nothing (the camera item moved or went, or a crashed run left them)."""
    plan = ContainerPlan(container.name, container.is_group)
    items = sorted(container.items, key=lambda i: i.index)
    paired: set[int] = set()
    for position, item in enumerate(items):
        if item.source != camera:
            continue
        above = items[position + 1] if position + 1 < len(items) else None
        if above is not None and above.source == twin and above.item_id not in paired:
            paired.add(above.item_id)
            wanted = twin_transform(item.transform, frame_width)
            if (transform_differs(above.transform, wanted) or above.enabled != item.enabled
                    or above.blend_mode != item.blend_mode or not above.locked):
                plan.updates.append((above.item_id, item))
        else:
            plan.create_above.append(item)
    plan.remove = [i.item_id for i in items if i.source == twin and i.item_id not in paired]
    return plan


def plan_mirror(containers: list[Container], camera: str, twin: str, frame_width: int) -> list[ContainerPlan]:
    return [p for p in (plan_container(c, camera, twin, frame_width) for c in containers) if not p.empty]


class SceneMirror:
    """Keeps the twins of ``camera`` in every scene and group of one OBS."""

    def __init__(self, camera: str, twin: str) -> None:
        self.camera, self.twin = camera, twin
        self.places: list[str] = []  # containers where the styled camera is shown (status)
        self._refused: set[tuple[str, str]] = set()  # (container, reason) already said once
        self.not_placed: set[str] = set()  # containers showing the camera where OBS refused a twin (status)

    # --- reading OBS ---------------------------------------------------------------------------
    @staticmethod
    def list_containers(client: OBSClient) -> list[Container]:
        containers = []
        for scene in client.request("GetSceneList").get("scenes", []):
            name = scene["sceneName"]
            items = client.request("GetSceneItemList", {"sceneName": name}).get("sceneItems", [])
            containers.append(Container(name, False, tuple(SceneItem.from_obs(i) for i in items)))
        for name in client.request("GetGroupList").get("groups", []):
            items = client.request("GetGroupSceneItemList", {"sceneName": name}).get("sceneItems", [])
            containers.append(Container(name, True, tuple(SceneItem.from_obs(i) for i in items)))
        return containers

    # --- changing OBS --------------------------------------------------------------------------
    def reconcile(self, client: OBSClient, frame_width: int, containers: list[Container] | None = None) -> int:
        """Bring every scene in line (``containers``: a listing just taken, to save reading OBS again);
        returns the number of twins created, changed or removed."""
        if containers is None:
            containers = self.list_containers(client)
        changes = 0
        for plan in plan_mirror(containers, self.camera, self.twin, frame_width):
            changes += self._apply(client, plan, frame_width)
        if changes:
            containers = self.list_containers(client)
        self.places = sorted(c.name for c in containers if any(i.source == self.twin for i in c.items))
        return changes

    def _apply(self, client: OBSClient, plan: ContainerPlan, frame_width: int) -> int:
        scene = plan.container
        changes = 0
        if plan.is_group and plan.create_above:
            # obs-websocket 5 (OBS 28-30) adds items to scenes only ("The specified source is not a scene.
            # (Is group)", code 602), so a camera inside a group cannot get its twin there.
            self._say_once(scene, f"{self.camera!r} is inside the group {scene!r}, and OBS's websocket cannot add items to "
                                  "a group: its styled version is not shown there; use a nested scene instead of a group")
            self.not_placed.add(scene)
            plan.create_above = []
        for twin_id, camera in plan.updates:
            self._follow(client, scene, twin_id, camera, frame_width)
            changes += 1
        # Top camera items first: placing a twin shifts only the items above it, so the indices of
        # the camera items still to do (all lower) stay as listed.
        for camera in sorted(plan.create_above, key=lambda i: -i.index):
            created = self._call(client, plan, "CreateSceneItem",
                                 {"sceneName": scene, "sourceName": self.twin, "sceneItemEnabled": camera.enabled})
            if created is None:
                continue
            twin_id = int(created["sceneItemId"])
            index = client.request("GetSceneItemIndex", {"sceneName": scene, "sceneItemId": camera.item_id})["sceneItemIndex"]
            client.request("SetSceneItemIndex", {"sceneName": scene, "sceneItemId": twin_id, "sceneItemIndex": index + 1})
            self._follow(client, scene, twin_id, camera, frame_width)
            log.info("styled camera placed over %r in %s %r", self.camera, "group" if plan.is_group else "scene", scene)
            changes += 1
        # Removed last: the Media Source lives as long as one of its items does (a twin just made in a
        # group may be the one that keeps it, after the input had to be created in the group's scene).
        for item_id in plan.remove:
            self._call(client, plan, "RemoveSceneItem", {"sceneName": scene, "sceneItemId": item_id})
            changes += 1
        return changes

    def _follow(self, client: OBSClient, scene: str, twin_id: int, camera: SceneItem, frame_width: int) -> None:
        """Give a twin the camera item's place, visibility and blend mode; lock it against stray drags."""
        ids = {"sceneName": scene, "sceneItemId": twin_id}
        client.request("SetSceneItemTransform", {**ids, "sceneItemTransform": twin_transform(camera.transform, frame_width)})
        client.request("SetSceneItemEnabled", {**ids, "sceneItemEnabled": camera.enabled})
        client.request("SetSceneItemBlendMode", {**ids, "sceneItemBlendMode": camera.blend_mode})
        client.request("SetSceneItemLocked", {**ids, "sceneItemLocked": True})

    def _call(self, client: OBSClient, plan: ContainerPlan, request: str, data: dict) -> dict | None:
        """A request OBS may refuse for one container (e.g. an item in a group it cannot edit): said
        once per container and reason, the other scenes carry on."""
        try:
            return client.request(request, data)
        except OBSRequestError as exc:
            self._say_once(plan.container, f"cannot show the styled {self.camera!r} in {plan.container!r}: {exc}")
            self.not_placed.add(plan.container)
            return None

    def _say_once(self, container: str, message: str) -> None:
        if (container, message) not in self._refused:
            self._refused.add((container, message))
            log.warning("%s", message)

    def create_input(self, client: OBSClient, settings: dict[str, Any]) -> bool:
        """Create the Media Source as the twin of the first camera item in a scene (obs-websocket makes
        an input together with a first scene item). False while no scene shows the camera yet."""
        containers = self.list_containers(client)
        for container in containers:
            cameras = [i for i in container.items if i.source == self.camera]
            if container.is_group or not cameras:
                continue
            camera = max(cameras, key=lambda i: i.index)
            created = client.request("CreateInput", {
                "sceneName": container.name, "inputName": self.twin, "inputKind": "ffmpeg_source",
                "inputSettings": settings, "sceneItemEnabled": camera.enabled,
            })
            client.request("SetSceneItemIndex", {"sceneName": container.name, "sceneItemId": int(created["sceneItemId"]),
                                                 "sceneItemIndex": camera.index + 1})
            return True
        return False

    def remove_all(self, client: OBSClient) -> None:
        """Every twin goes, then the Media Source: the scenes are exactly as they were. (RemoveInput
        alone is not enough: OBS 29 took the input out of one scene and left its other items.)"""
        for container in self.list_containers(client):
            for item in container.items:
                if item.source == self.twin:
                    try:
                        client.request("RemoveSceneItem", {"sceneName": container.name, "sceneItemId": item.item_id})
                    except OBSRequestError:
                        pass  # gone meanwhile
        try:
            client.request("RemoveInput", {"inputName": self.twin})
        except OBSRequestError:
            pass  # already gone with its last item
        self.places = []


def scene_children(containers: list[Container]) -> dict[str, set[str]]:
    """For each scene or group, the scenes and groups it shows directly."""
    names = {c.name for c in containers}
    return {c.name: {i.source for i in c.items if i.source in names} for c in containers}


def shows(containers: list[Container], outer: str, inner: str) -> bool:
    """Whether scene ``outer`` shows ``inner`` (itself, or nested at any depth)."""
    children = scene_children(containers)
    seen, todo = set(), [outer]
    while todo:
        name = todo.pop()
        if name == inner:
            return True
        if name in seen:
            continue
        seen.add(name)
        todo.extend(children.get(name, ()))
    return False


# --- what a run that did not stop cleanly left in OBS ------------------------------------------------
# While twins exist, the state folder names them, so that `l2d-obs stop` can take them out of OBS even
# when the daemon that made them was killed (the next `start` adopts or removes them as well).
def leftovers_file() -> Path:
    return state_dir() / "obs-output.json"


def record_twins(camera: str, twin: str, address: str) -> None:
    path = leftovers_file()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps({"camera": camera, "input": twin, "obs": address}))
    except OSError as exc:
        log.debug("cannot record the OBS twins in %s: %s", path, exc)


def forget_twins() -> None:
    leftovers_file().unlink(missing_ok=True)


def remove_leftovers(connect: Callable[[], OBSClient]) -> list[str] | None:
    """Remove the twins a stopped run left (None when none are recorded); returns the scenes cleaned."""
    try:
        record = json.loads(leftovers_file().read_text())
        mirror = SceneMirror(str(record["camera"]), str(record["input"]))
    except FileNotFoundError:
        return None
    except (OSError, ValueError, KeyError, TypeError):
        forget_twins()
        return None
    with connect() as client:
        scenes = sorted(c.name for c in mirror.list_containers(client) if any(i.source == mirror.twin for i in c.items))
        mirror.remove_all(client)
    forget_twins()
    return scenes
