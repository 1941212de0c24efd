"""
Every parameter of the tracker node: name, default, description, range, and whether it is fixed.

One table feeds the node's declarations (descriptors with ranges, read-only flags, the choices
of string parameters), ``config/tracker.yaml`` and the tests that check the two agree; the
offline bag tool reads the node's defaults from it without ROS. Read-only parameters shape
what ``configure``/``activate`` build (the model, its device, the subscriptions' QoS); set them
at launch. The others apply on the next frame without a restart.
"""

from dataclasses import dataclass
import re
from typing import Any, Dict, Iterable, Optional, Sequence, Tuple, TYPE_CHECKING

from detrack_model.data.encoded import DEFAULT_MAX_PIXELS
from detrack_model.tracking.factory import RuntimeConfig
from detrack_model.tracking.model_host import ModelHost
from detrack_model.tracking.session import SessionSettings, TrackingSession
from detrack_model.tracking.target_3d import DepthSettings
from detrack_ros.session_log import describe

if TYPE_CHECKING:
    from rcl_interfaces.msg import ParameterDescriptor

DEVICE_PATTERN = re.compile(r'^(auto|cpu|cuda|cuda:\d+)$')
# The session's defaults (the tracker's, for its settings): one definition of each value.
SESSION = SessionSettings()


@dataclass(frozen=True)
class ParameterSpec:
    """One node parameter and the rules a new value must follow."""

    name: str
    default: Any
    description: str
    read_only: bool = False
    integer_range: Optional[Tuple[int, int]] = None
    float_range: Optional[Tuple[float, float]] = None
    choices: Optional[Tuple[str, ...]] = None

    def descriptor(self) -> 'ParameterDescriptor':
        """Return the ROS descriptor: type, description, range, read-only flag."""
        # Imported here so that the table itself serves tools that run without ROS.
        from rcl_interfaces.msg import FloatingPointRange, IntegerRange, ParameterDescriptor
        descriptor = ParameterDescriptor(name=self.name, description=self.description,
                                         read_only=self.read_only, type=_type_of(self.default))
        if self.integer_range is not None:
            low, high = self.integer_range
            descriptor.integer_range = [IntegerRange(from_value=low, to_value=high, step=1)]
        if self.float_range is not None:
            low, high = self.float_range
            descriptor.floating_point_range = [FloatingPointRange(from_value=float(low),
                                                                  to_value=float(high),
                                                                  step=0.0)]
        if self.choices is not None:
            descriptor.additional_constraints = 'one of: ' + ', '.join(self.choices)
        return descriptor

    def check(self, value: Any) -> Optional[str]:
        """Return why ``value`` is refused beyond the descriptor's own checks, or None."""
        if self.choices is not None and value not in self.choices:
            return f'{self.name} must be one of {", ".join(self.choices)}; got {value!r}'
        if self.name == 'device' and not DEVICE_PATTERN.match(value):
            return f'device must be auto, cpu, cuda or cuda:N; got {value!r}'
        return None


def _type_of(value: Any) -> int:
    from rcl_interfaces.msg import ParameterType
    if isinstance(value, bool):
        return ParameterType.PARAMETER_BOOL
    if isinstance(value, int):
        return ParameterType.PARAMETER_INTEGER
    if isinstance(value, float):
        return ParameterType.PARAMETER_DOUBLE
    return ParameterType.PARAMETER_STRING


PARAMETERS: Sequence[ParameterSpec] = (
    # -- what configure loads -------------------------------------------------------------
    ParameterSpec('model_path', '', 'Model bundle (<stem>, <stem>.safetensors or <stem>.yaml) '
                  'or exported .onnx file; empty: the shipped default model.', read_only=True),
    ParameterSpec('device', 'auto', 'auto (first GPU if any, else CPU), cpu, cuda or cuda:N.',
                  read_only=True),
    ParameterSpec('backend', 'auto', 'Inference backend; auto: onnxruntime on the CPU, PyTorch '
                  'on a GPU.', read_only=True, choices=('auto', 'torch', 'onnxruntime')),
    ParameterSpec('fp16', False, 'Half precision on a GPU (ignored on the CPU).', read_only=True),
    ParameterSpec('threads', 0, 'CPU threads for inference; 0: the library default.',
                  read_only=True, integer_range=(0, 256)),
    ParameterSpec('auto_activate', True, 'Drive the lifecycle to active on start, so a plain '
                  '`ros2 run` tracks; false: wait for configure/activate requests.',
                  read_only=True),
    # -- subscriptions (created on activate) ------------------------------------------------
    ParameterSpec('image_transport', 'raw', "raw: subscribe 'image' (sensor_msgs/Image); "
                  "compressed: subscribe 'image/compressed' (jpeg/png CompressedImage).",
                  read_only=True, choices=('raw', 'compressed')),
    ParameterSpec('qos_reliability', 'best_effort', 'Reliability of the image subscription. '
                  'best_effort (sensor-data QoS) also receives from reliable publishers.',
                  read_only=True, choices=('best_effort', 'reliable')),
    ParameterSpec('qos_depth', 5, 'Queue depth of the image subscription (keep last).',
                  read_only=True, integer_range=(1, 100)),
    ParameterSpec('init_history', 30, 'Recent images kept so that an init box stamped with an '
                  "image's stamp starts on that very image; 0: always the next image.",
                  read_only=True, integer_range=(0, 300)),
    ParameterSpec('diagnostics_period', 1.0, 'Seconds between diagnostics messages.',
                  read_only=True, float_range=(0.1, 60.0)),
    # -- runtime-changeable ---------------------------------------------------------------
    ParameterSpec('decoder_layers', 0, 'Decoder layers run per frame (fewer: faster, less '
                  'accurate); 0: all the model has.', integer_range=(0, 16)),
    ParameterSpec('score_threshold', SESSION.score_threshold, 'Score under which a frame '
                  'counts as a miss.', float_range=(0.0, 1.0)),
    ParameterSpec('lost_patience', SESSION.lost_patience, 'Misses in a row after which the '
                  "target is reported lost (the 'detections' array is then empty).",
                  integer_range=(1, 10000)),
    ParameterSpec('search_patience', SESSION.search_patience, 'Misses in a row after which the '
                  'search freezes on the last confident box (until then a reported loss '
                  'is a dip the tracker still follows); 0: lost_patience.',
                  integer_range=(0, 10000)),
    ParameterSpec('motion', SESSION.motion, 'While the target is lost, move the search area '
                  'on at its last velocity (decaying).'),
    ParameterSpec('redetect', SESSION.redetect, 'While the target is lost, also search tiles '
                  'of the whole frame, one or two per frame, and take the target back on a '
                  'confident find (costs one network run per tile).'),
    ParameterSpec('reference_frames', SESSION.reference_frames, 'Frames after the start whose '
                  "mean score is the target's reference: the miss threshold is lowered for a "
                  'target that scores lower than that (another camera, another kind of scene); '
                  '0: off.', integer_range=(0, 1000)),
    ParameterSpec('recover_threshold', SESSION.recover_threshold, 'Score a lost target needs '
                  'to be taken back farther than one box size (plus recover_growth per frame '
                  'lost) from where it was last seen; 0: score_threshold (no hysteresis).',
                  float_range=(0.0, 1.0)),
    ParameterSpec('recover_growth', SESSION.recover_growth, 'Box sizes per frame lost by which '
                  'that distance grows (the target moves on while it is lost).',
                  float_range=(0.0, 100.0)),
    ParameterSpec('template_update', SESSION.template_update, 'Take a confident view of the '
                  'target (score 0.8 or more, at most every 30 frames) as the template, and go '
                  'back to the given one on a loss.'),
    ParameterSpec('class_id', 'target', "class_id of the published detection's hypothesis."),
    ParameterSpec('debug_image', True, "Publish the overlay on 'debug_image' (only while "
                  'someone subscribes to it).'),
    ParameterSpec('max_rate', 0.0, 'Most frames processed per second; 0: as fast as the model '
                  'runs. Frames in between are dropped, never queued.',
                  float_range=(0.0, 1000.0)),
    ParameterSpec('auto_init', False, "Start tracking from 'detections' (Detection2DArray) "
                  'while no target is tracked or the target is lost.'),
    ParameterSpec('auto_init_class_id', '', 'class_id a detection needs for auto_init; empty: '
                  'any class.'),
    ParameterSpec('auto_init_min_score', 0.5, 'Smallest detection score auto_init accepts.',
                  float_range=(0.0, 1.0)),
    ParameterSpec('click_timeout', 10.0, 'Seconds a first corner click waits for the second '
                  "('init_click', 'clicked_point').", float_range=(0.1, 3600.0)),
    ParameterSpec('mono16_shift', 8, 'mono16 images become 8 bit as value >> shift (8: full '
                  '16-bit range; 4 or 2 for 12- or 10-bit cameras).', integer_range=(0, 8)),
    ParameterSpec('max_image_pixels', DEFAULT_MAX_PIXELS, 'Largest image accepted, in pixels '
                  '(width x height); a compressed image is checked from its header before it '
                  'is decoded. Larger ones are dropped and counted as bad images.',
                  integer_range=(1, 1 << 30)),
    # -- the target in 3-D from an aligned depth image -------------------------------------
    ParameterSpec('depth', False, "Subscribe 'depth/image' (aligned to the colour image) and "
                  "publish the target in 3-D on 'target_point' and 'detection_3d'.",
                  read_only=True),
    ParameterSpec('depth_scale', 0.0, 'Metres per depth unit; 0: by encoding (16UC1 '
                  'millimetres, 32FC1 metres).', float_range=(0.0, 1000.0)),
    ParameterSpec('depth_sync_tolerance', 0.02, 'Largest difference in seconds between the '
                  'stamps of a colour image and the depth image paired with it.',
                  float_range=(0.0, 1.0)),
    ParameterSpec('depth_wait', 0.05, 'Seconds a tracked frame waits for its depth image when '
                  'that has not arrived yet (only while depth images arrive).',
                  float_range=(0.0, 1.0)),
    ParameterSpec('depth_min', 0.1, 'Smallest valid depth in metres; nearer readings, and '
                  'zeros, are ignored.', float_range=(0.001, 1000.0)),
    ParameterSpec('depth_max', 20.0, 'Largest valid depth in metres (above depth_min); '
                  'farther readings are ignored.', float_range=(0.001, 1000.0)),
    ParameterSpec('depth_percentile', 50.0, "Percentile of the valid depths in the box's "
                  "centre taken as the target's depth (50: the median).",
                  float_range=(0.0, 100.0)),
    ParameterSpec('depth_roi_fraction', 0.5, 'Central part of the box whose depth pixels are '
                  "used, as a fraction of the box's width and height.",
                  float_range=(0.01, 1.0)),
    ParameterSpec('depth_min_valid_pixels', 10, 'Fewest valid depth pixels in the box centre '
                  'for a 3-D answer; fewer: none for that frame (counted).',
                  integer_range=(1, 1 << 24)),
)

SPECS: Dict[str, ParameterSpec] = {spec.name: spec for spec in PARAMETERS}
NAMES: Tuple[str, ...] = tuple(SPECS)


# Node parameters that are fields of the tracking session's settings.
SESSION_SETTINGS = tuple(name for name in NAMES if name in SessionSettings.__dataclass_fields__)


def session_settings(values: Dict[str, Any]) -> SessionSettings:
    """Return the tracking session's settings of the parameter ``values``."""
    return SessionSettings(**{name: values[name] for name in SESSION_SETTINGS})


def runtime_config(values: Dict[str, Any]) -> RuntimeConfig:
    """Return where and how the model runs, from the parameter ``values``."""
    return RuntimeConfig(device=values['device'], backend=values['backend'],
                         fp16=values['fp16'], threads=values['threads'] or None,
                         decoder_layers=values['decoder_layers'] or None)


def depth_settings(values: Dict[str, Any]) -> DepthSettings:
    """Return the depth statistic's settings of the parameter ``values`` (ValueError if bad)."""
    return DepthSettings(min_depth=values['depth_min'], max_depth=values['depth_max'],
                         percentile=values['depth_percentile'],
                         roi_fraction=values['depth_roi_fraction'],
                         min_valid_pixels=values['depth_min_valid_pixels'])


def refusal(values: Dict[str, Any], names: Iterable[str] = NAMES) -> Optional[str]:
    """
    Return why the parameter ``values`` cannot be taken, or None.

    ``names`` are the values to check one by one (the descriptor's range is ROS's check;
    this is the rest), then every value is checked with the others.
    """
    for name in names:
        reason = SPECS[name].check(values[name])
        if reason is not None:
            return reason
    return _together(values)


def _together(values: Dict[str, Any]) -> Optional[str]:
    """Return why parameter ``values`` that are each in range do not work together, or None."""
    if not values['depth_max'] > values['depth_min']:
        return (f"depth_max ({values['depth_max']:g}) must be larger than depth_min "
                f"({values['depth_min']:g})")
    try:
        depth_settings(values)
    except ValueError as error:
        return f'depth parameters: {error}'
    return None


def apply_change(live: Dict[str, Any], changed: Dict[str, Any],
                 session: Optional[TrackingSession], model: Optional[ModelHost]
                 ) -> Optional[str]:
    """
    Take the ``changed`` values into ``live`` and the running session, or return why not.

    Every value is checked, and the session takes its settings, before ``live`` changes: a
    refused set (ROS applies a set atomically) changes nothing.
    """
    values = {**live, **changed}
    reason = refusal(values, changed)
    if reason is not None:
        return reason
    if session is not None:
        try:
            model.apply(session, session_settings(values))
        except (ValueError, OSError, RuntimeError) as error:
            return f'{model.path}: {describe(error)}'
    live.update(values)
    return None
