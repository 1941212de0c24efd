"""
Read ROS 2 messages from an MCAP bag and write new ones, without ROS.

rosbag2 (the MCAP storage, the default since Jazzy) stores each topic's messages CDR-encoded
under a ``ros2msg`` schema that carries the full message definition, so
``mcap_ros2``'s decoder reads any of them on a machine without ROS, as objects whose fields
have the message's names. Writing needs the definition text too; :mod:`message_definitions`
builds it from the ``.msg`` files.

Every problem with the file, a topic or a type raises :class:`BagError` with one line that
names the bag and what is wrong.
"""

import os
import pathlib
from typing import Any, Dict, Iterator, NamedTuple, Sequence

from detrack_ros.message_definitions import message_definition, MessageDefinitionError
from mcap.exceptions import McapError
from mcap.reader import make_reader, McapReader
from mcap.records import Schema
from mcap.writer import MCAP0_MAGIC
from mcap_ros2.decoder import DecoderFactory
from mcap_ros2.writer import Writer

IMAGE_TYPE = 'sensor_msgs/msg/Image'
COMPRESSED_IMAGE_TYPE = 'sensor_msgs/msg/CompressedImage'
DETECTION_TYPE = 'vision_msgs/msg/Detection2D'
DETECTION_ARRAY_TYPE = 'vision_msgs/msg/Detection2DArray'
ROI_TYPE = 'sensor_msgs/msg/RegionOfInterest'
CAMERA_INFO_TYPE = 'sensor_msgs/msg/CameraInfo'


class BagError(RuntimeError):
    """A bag that cannot be read or written as asked (the message says what and where)."""


class BagMessage(NamedTuple):
    """One decoded message of a bag, in the order it was recorded."""

    topic: str
    type_name: str
    message: Any
    # Recording time (ns since the epoch): what `ros2 bag play` paces by.
    log_time: int


def normalised_type(name: str) -> str:
    """Return ``pkg/msg/Name`` for ``pkg/msg/Name`` or the older ``pkg/Name`` spelling."""
    parts = name.split('/')
    return f'{parts[0]}/msg/{parts[1]}' if len(parts) == 2 else name


def bag_file(path: os.PathLike) -> pathlib.Path:
    """Return the MCAP file of ``path``: the file itself, or the one of a rosbag2 directory."""
    path = pathlib.Path(path)
    if path.is_dir():
        files = sorted(path.glob('*.mcap'))
        if len(files) != 1:
            found = ', '.join(f.name for f in files) or 'none'
            raise BagError(f'bag directory {path} must hold exactly one .mcap file '
                           f'(found: {found}); pass the file to read')
        return files[0]
    if not path.is_file():
        raise BagError(f'bag {path} does not exist')
    return path


class BagReader:
    """
    An MCAP bag opened for reading: its topics and types, and its messages in recording order.

    The file's start and end markers are checked on opening, so a recording cut short (no end
    marker: the recorder was killed, the disk filled up) is named as such rather than failing
    deep inside the reader. Use as a context manager, or call :meth:`close`.
    """

    def __init__(self, path: os.PathLike) -> None:
        self.path = bag_file(path)
        try:
            self._stream = open(self.path, 'rb')
        except OSError as error:
            raise BagError(f'cannot open bag {self.path}: {error.strerror or error}') from None
        try:
            self._check_markers()
            self._reader: McapReader = make_reader(self._stream,
                                                   decoder_factories=[DecoderFactory()])
            summary = self._reader.get_summary()
        except BagError:
            self.close()
            raise
        except (McapError, OSError, ValueError) as error:
            self.close()
            raise BagError(f'bag {self.path} is corrupt: {error}') from None
        if summary is None:
            self.close()
            raise BagError(f'bag {self.path} has no summary section (written without an index); '
                           'rewrite it with `mcap recover` or `ros2 bag convert`')
        self.topics: Dict[str, str] = {}
        for channel in summary.channels.values():
            schema = summary.schemas.get(channel.schema_id)
            self.topics[channel.topic] = normalised_type(schema.name) if schema else ''
        self.counts: Dict[str, int] = {}
        if summary.statistics is not None:
            for channel_id, count in summary.statistics.channel_message_counts.items():
                channel = summary.channels.get(channel_id)
                if channel is not None:
                    self.counts[channel.topic] = self.counts.get(channel.topic, 0) + count

    def _check_markers(self) -> None:
        size = os.fstat(self._stream.fileno()).st_size
        head = self._stream.read(len(MCAP0_MAGIC))
        if head != MCAP0_MAGIC:
            raise BagError(f'{self.path} is not an MCAP bag (it does not start with the MCAP '
                           'magic bytes); only the MCAP storage of rosbag2 is read')
        self._stream.seek(max(0, size - len(MCAP0_MAGIC)))
        if size < 2 * len(MCAP0_MAGIC) or self._stream.read() != MCAP0_MAGIC:
            raise BagError(f'bag {self.path} is truncated: it ends without the MCAP end marker '
                           f'after {size} bytes (the recording was cut short); recover what '
                           'it holds with `mcap recover` or `ros2 bag reindex`')
        self._stream.seek(0)

    def close(self) -> None:
        """Close the file."""
        self._stream.close()

    def __enter__(self) -> 'BagReader':
        """Return the open reader."""
        return self

    def __exit__(self, *exc_info: Any) -> None:
        """Close the file."""
        self.close()

    def require(self, topic: str, types: Sequence[str], role: str) -> str:
        """
        Return the type of ``topic``, one of ``types``; raise BagError when it is not.

        ``role`` says what the topic is for (``image topic``, ``init topic``), for the message.
        """
        found = self.topics.get(topic)
        wanted = ' or '.join(types)
        if found is None:
            candidates = sorted(name for name, kind in self.topics.items() if kind in types)
            hint = (f'; {wanted} topics in it: {", ".join(candidates)}' if candidates
                    else f'; it has no {wanted} topic')
            raise BagError(f'{role} {topic!r} is not in bag {self.path}{hint}')
        if found not in types:
            raise BagError(f'{role} {topic!r} of bag {self.path} has type {found or "(none)"}; '
                           f'expected {wanted}')
        return found

    def messages(self, topics: Sequence[str]) -> Iterator[BagMessage]:
        """Yield the messages of ``topics`` in recording order, decoded."""
        count = 0
        iterator = self._reader.iter_decoded_messages(topics=list(topics), log_time_order=True)
        while True:
            try:
                schema, channel, record, decoded = next(iterator)
            except StopIteration:
                return
            except (McapError, OSError, ValueError, IndexError, KeyError, TypeError,
                    UnicodeDecodeError) as error:
                # A damaged chunk or a message that does not match its own schema.
                raise BagError(f'bag {self.path} is corrupt after {count} messages of '
                               f'{", ".join(topics)}: {type(error).__name__}: {error}') from None
            count += 1
            yield BagMessage(channel.topic, self.topics[channel.topic], decoded, record.log_time)


class BagWriter:
    """
    Write ROS 2 messages to a new MCAP bag, rosbag2's way (CDR, ``ros2msg`` schemas).

    The messages go to ``<path>.part`` first; :meth:`commit` finishes the file and renames it,
    :meth:`abort` removes it, so a failed run never leaves a half-written bag under the name
    asked for. Messages are plain nested mappings or objects with the message's field names;
    fields left out take their defaults.
    """

    def __init__(self, path: os.PathLike) -> None:
        self.path = pathlib.Path(path)
        self._part = self.path.with_name(self.path.name + '.part')
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._stream = open(self._part, 'wb')
        except OSError as error:
            raise BagError(f'cannot write bag {self.path}: {error.strerror or error}') from None
        self._writer = Writer(self._stream)
        self._schemas: Dict[str, Schema] = {}
        self._topics: Dict[str, str] = {}
        self.counts: Dict[str, int] = {}

    def write(self, topic: str, type_name: str, message: Any, log_time: int) -> None:
        """Write ``message`` of ``type_name`` on ``topic``, recorded at ``log_time`` ns."""
        known = self._topics.setdefault(topic, type_name)
        if known != type_name:
            raise BagError(f'topic {topic!r} of {self.path} already holds {known}, '
                           f'not {type_name}')
        schema = self._schemas.get(type_name)
        if schema is None:
            try:
                text = message_definition(type_name)
            except MessageDefinitionError as error:
                raise BagError(f'cannot write {type_name} to {self.path}: {error}') from None
            schema = self._schemas[type_name] = self._writer.register_msgdef(type_name, text)
        self._writer.write_message(topic, schema, message, log_time=log_time,
                                   publish_time=log_time)
        self.counts[topic] = self.counts.get(topic, 0) + 1

    def commit(self) -> pathlib.Path:
        """Finish the file and give it its name; return the path."""
        try:
            self._writer.finish()
            self._stream.close()
            os.replace(self._part, self.path)
        except OSError as error:
            self.abort()
            raise BagError(f'cannot write bag {self.path}: {error.strerror or error}') from None
        return self.path

    def abort(self) -> None:
        """Drop what was written."""
        self._stream.close()
        try:
            self._part.unlink()
        except FileNotFoundError:
            pass
