"""
The node's interface is written once: the tables, the README made from them, the running graph.

The README's topic and parameter tables must be what ``tools/make_interface_docs.py`` writes
from :mod:`detrack_ros.interface` and :mod:`detrack_ros.parameters`, and a real tracker node
on a real rclpy graph must have exactly the topics and services of the table, in each setting
that changes them.
"""

import pathlib
from typing import Any, Dict, Set, Tuple

from detrack_ros.interface import IN, OUT, SERVICES, TOPICS
from detrack_ros.parameters import NAMES, PARAMETERS, SPECS
import pytest
from tools import make_interface_docs

README = pathlib.Path(__file__).resolve().parents[2] / 'README.md'
# Parameter settings whose graphs together hold every topic of the table.
GRAPH_SETTINGS = ({}, {'image_transport': 'compressed', 'depth': True})
LABELS = {IN: 'subscriptions', OUT: 'publishers', 'services': 'services'}


# -- the table and the README --------------------------------------------------------------

def test_readme_tables_are_current():
    """README.md between the interface markers is what the script writes from the tables now."""
    reason = make_interface_docs.stale(README.read_text(encoding='utf-8'))
    assert reason is None, reason


def test_an_edited_table_is_reported_with_the_command():
    """A table changed without regenerating is reported, naming the table and the command."""
    text = README.read_text(encoding='utf-8')
    edited = text.replace('| `init_roi` | in |', '| `init_roi` | out |')
    assert edited != text
    reason = make_interface_docs.stale(edited)
    assert reason is not None and 'topics' in reason
    assert make_interface_docs.COMMAND in reason
    assert make_interface_docs.stale(make_interface_docs.render(edited)) is None


def test_render_needs_each_marker_pair_once():
    """Without its markers, or with a block twice, the README is refused, not half written."""
    text = README.read_text(encoding='utf-8')
    begin = make_interface_docs.BEGIN.format('parameters')
    with pytest.raises(ValueError, match='parameters'):
        make_interface_docs.render(text.replace(begin, ''))
    block = text[text.index(begin):]
    with pytest.raises(ValueError, match='found 2'):
        make_interface_docs.render(text + block)


def test_every_row_is_written():
    """Each topic, service and parameter has its row, and cells keep their '|' and '<'."""
    topics = make_interface_docs.topic_block()
    for topic in TOPICS:
        assert f'| `{topic.name}` | {topic.direction} | `{topic.type_name}` |' in topics
    for service in SERVICES:
        assert f'`{service.name}` (`{service.type_name}`)' in topics
    parameters = make_interface_docs.parameter_block()
    assert [line.split(' | ')[0] for line in parameters.splitlines()[2:]] == [
        f'| `{name}`' for name in NAMES]
    assert '&lt;stem>' in parameters and '`<image>_mouse_left`' in topics
    assert make_interface_docs._cell('a | `b|<c>` <d>') == 'a \\| `b\\|<c>` &lt;d>'


def test_table_entries_are_well_formed():
    """Names are unique, directions in/out, types full ROS names, conditions real parameters."""
    names = [topic.name for topic in TOPICS] + [service.name for service in SERVICES]
    assert len(names) == len(set(names))
    for topic in TOPICS:
        assert topic.direction in (IN, OUT), topic
        assert topic.type_name.count('/msg/') == 1, topic
        for name, value in topic.when:
            spec = SPECS[name]
            assert type(value) is type(spec.default), topic
            assert spec.choices is None or value in spec.choices, topic
    for service in SERVICES:
        assert service.type_name.count('/srv/') == 1, service


# -- the running graph ---------------------------------------------------------------------

def expected_graph(namespace: str, values: Dict[str, Any]) -> Dict[str, Set[Tuple[str, str]]]:
    """Return the (topic, type) pairs and services the table promises with ``values``."""
    graph = {IN: set(), OUT: set(),
             'services': {(absolute(namespace, s.name), s.type_name) for s in SERVICES}}
    for topic in TOPICS:
        if topic.exists(values):
            graph[topic.direction].add((absolute(namespace, topic.name), topic.type_name))
    return graph


def absolute(namespace: str, name: str) -> str:
    """Return the topic or service ``name`` resolved in ``namespace``."""
    return name if name.startswith('/') else f'{namespace}/{name}'


def actual_graph(harness) -> Dict[str, Set[Tuple[str, str]]]:
    """Return the node's topics and services as the graph reports them, less rclpy's own."""
    client, fqn = harness.client, harness.fqn
    # Every rclpy node has these; a lifecycle node also announces its transitions.
    infrastructure = {'/rosout', '/parameter_events', f'{fqn}/transition_event'}

    def pairs(names_and_types, keep) -> Set[Tuple[str, str]]:
        return {(name, kind) for name, kinds in names_and_types for kind in kinds if keep(name)}

    by_node = ('tracker', harness.namespace)
    return {
        OUT: pairs(client.get_publisher_names_and_types_by_node(*by_node),
                   lambda name: name not in infrastructure),
        IN: pairs(client.get_subscriber_names_and_types_by_node(*by_node),
                  lambda name: name not in infrastructure),
        # The parameter, lifecycle and type-description services live under the node's name.
        'services': pairs(client.get_service_names_and_types_by_node(*by_node),
                          lambda name: not name.startswith(f'{fqn}/')),
    }


@pytest.mark.parametrize('setting', GRAPH_SETTINGS, ids=['defaults', 'compressed_depth'])
def test_graph_matches_the_table(ros_context, setting):
    """An active node has exactly the table's topics, types and services, nothing else."""
    pytest.importorskip('vision_msgs', reason='needs vision_msgs (make build, then source '
                        'build/ws/install/setup.bash)')
    from node_harness import NodeHarness, wait_until
    values = {spec.name: spec.default for spec in PARAMETERS}
    values.update(setting)
    with NodeHarness(ros_context, setting) as harness:
        expected = expected_graph(harness.namespace, values)
        # Discovery is asynchronous: wait for the graph to settle on the promised entities.
        wait_until(lambda: actual_graph(harness) == expected)
        actual = actual_graph(harness)
    drift = [f'{LABELS[part]}: in the graph only {sorted(actual[part] - expected[part])}, '
             f'in detrack_ros/interface.py only {sorted(expected[part] - actual[part])}'
             for part in expected if actual[part] != expected[part]]
    assert not drift, '; '.join(drift)
