"""
Synthetic single-object tracking sequences written in the GOT-10k layout.

Every sequence is a pure function of ``(seed, split, index)`` and the split's images: a
background (a wallpaper or panorama from the image pool, or one of scikit-image's photographs:
cropped, scaled, flipped, larger than the frame so the camera can pan, zoom and turn), often
strewn with still clutter objects; a target that is either a cut-out object with its own alpha
mask (an animal, a vehicle, a mug... from the image pool) or a shape cut from a *different*
image (ellipse, rounded rectangle or rounded polygon, optionally with a coloured border); and a
random subset of the usual tracking difficulties: scale, rotation, perspective and aspect
change, small (down to 12 px) and large (half the frame) targets, fast motion with motion blur,
partial and full occlusion by patches of other images or other objects, out-of-view spells,
illumination drift, under- and over-exposure, a moving light spot, sensor noise, JPEG
artefacts, look-alike distractors (other objects of the target's own group) and camera pan,
zoom and rotation.

Modules: ``sources`` (which images a split may use), ``motion`` (random curves and paths),
``sprites`` (textures, shapes and their poses), ``scene`` (drawing one sequence), ``render``
(frames and exact labels), ``writer`` (the GOT-10k layout on disk), ``dataset`` (the recipe
entry ``type: synthetic``: a split generated when missing, then read by ``Got10k``).

Layout (readable by :class:`detrack_model.data.Got10k`)::

    root/<split>/list.txt                 sequence directory names, one per line
    root/<split>/synthetic.json           the generator's arguments
    root/<split>/<seq>/00000001.jpg ...   frames (JPEG quality 90)
    root/<split>/<seq>/groundtruth.txt    x,y,w,h per frame, 4 decimals
    root/<split>/<seq>/absence.label      1 = the target is not visible at all
    root/<split>/<seq>/cover.label        0..8 visible fraction in eighths (0 = fully hidden)
    root/<split>/<seq>/cut_by_image.label 1 = part of the target lies outside the frame
    root/<split>/<seq>/meta_info.ini      GOT-10k's key: value lines (line 5.. = classes)
    root/<split>/<seq>/synthetic.json     seed, sources, attributes, events and statistics

Label conventions, all exact from the rendering masks (never estimated). The *object mask* is
the set of pixels where the target's warped shape alpha is >= 0.5; appearance uses the soft
alpha (anti-aliased edges) and, during fast motion, a motion-blurred copy, but the labels
always describe the sharp object at the frame's time.

- Box: the tight axis-aligned box of the object mask, occluded parts included (GOT-10k
  annotates the whole object). When the object is partly outside the frame the box is that of
  its part inside the frame (clipped, as GOT-10k does). When it is entirely outside the frame
  the box is the true, unclipped box of the whole object, lying outside the image, and
  ``absence.label`` is 1. Pixel ``i`` covers ``[i, i + 1)``, so ``w = x_max - x_min + 1``.
- Cover: ``v`` visible pixels (inside the frame and not under an occluder) of ``n`` object
  pixels (the whole object, outside-the-frame pixels included): 0 when ``v == 0``, 8 when
  ``v == n``, otherwise ``round(8 v / n)`` clipped to 1..7. So 0 means fully hidden and 8 fully
  visible, exactly.
- Absence: 1 exactly when cover is 0 (fully occluded or fully out of the frame).
- Distractors are drawn behind the target and never count as occluders.

The first frame always shows the target fully visible (cover 8); events (occlusions,
out-of-view spells, fast-motion spells) start at frame 3 or later, never overlap, and keep
absence spells short (a few frames).

Split discipline: ``train``, ``val`` and ``test`` draw *all* their images (backgrounds,
targets, occluders, clutter) from disjoint sets: scikit-image's photographs from
:data:`SPLIT_SOURCES`, the image pool from its split manifest (by package and file; the test
split's backgrounds come from packages training never uses). The split name enters every
sequence's seed, so even the same ``seed`` gives different streams per split.
"""

from detrack_model.data.synthetic.motion import random_walk, schedule, smooth_noise
from detrack_model.data.synthetic.render import (background_view, cover_label, mask_box,
                                                 render_frame, RenderedFrame,
                                                 sprite_homography)
from detrack_model.data.synthetic.scene import ATTRIBUTE_PROBABILITIES, build_scene, Scene
from detrack_model.data.synthetic.sources import (load_object, load_source, load_texture,
                                                  ObjectSource, source_set, SourceSet,
                                                  SPLIT_SOURCES)
from detrack_model.data.synthetic.sprites import Sprite, TEMPLATE_SIZE
from detrack_model.data.synthetic.writer import (build_sequence_scene, generate_dataset,
                                                 JPEG_QUALITY, sequence_name, sequence_seed,
                                                 write_sequence)

__all__ = [
    'ATTRIBUTE_PROBABILITIES', 'background_view', 'build_scene', 'build_sequence_scene',
    'cover_label',
    'generate_dataset', 'JPEG_QUALITY', 'load_object', 'load_source', 'load_texture',
    'mask_box', 'ObjectSource', 'random_walk', 'render_frame', 'RenderedFrame', 'schedule',
    'Scene', 'sequence_name', 'sequence_seed', 'smooth_noise', 'source_set', 'SourceSet',
    'SPLIT_SOURCES', 'Sprite', 'sprite_homography', 'TEMPLATE_SIZE', 'write_sequence',
]
