"""STAR reading/writing and the lazy particle stack on small files written in tmp_path."""

from __future__ import annotations

import dataclasses

import pandas as pd
import pytest
import starfile
import torch

from cryoglass.classify import Assignments
from cryoglass.ctf.params import CTFParams
from cryoglass.io import (
    ParticleStack,
    class_numbers,
    make_particle_set,
    read_images,
    read_particles,
    write_class2d_star,
    write_latent_star,
    write_mrc,
    write_relion_star,
)


def _synthetic_set(tmp_path, generator, n=7):
    images = torch.randn(n, 6, 6, generator=generator)
    write_mrc(tmp_path / "a.mrcs", images[:4], pixel_size_angstrom=1.5, stack=True)
    write_mrc(tmp_path / "b.mrcs", images[4:], pixel_size_angstrom=1.5, stack=True)
    names = [f"{i + 1}@a.mrcs" for i in range(4)] + [f"{i + 1}@b.mrcs" for i in range(n - 4)]
    particles = make_particle_set(
        names,
        pixel_size_angstrom=1.5,
        image_size=6,
        euler_deg=torch.rand(n, 3, generator=generator, dtype=torch.float64) * 90,
        shift_angstrom=torch.randn(n, 2, generator=generator, dtype=torch.float64),
        ctf=CTFParams(
            defocus_u_angstrom=torch.rand(n, generator=generator, dtype=torch.float64) * 1e4 + 1e4,
            defocus_v_angstrom=torch.full((n,), 9000.0, dtype=torch.float64),
            astigmatism_angle_deg=30.0,
            voltage_kv=300.0,
            cs_mm=2.7,
            amplitude_contrast=0.07,
        ),
        image_root=tmp_path,
    )
    return particles, images


def test_write_read_round_trip(tmp_path, generator):
    particles, images = _synthetic_set(tmp_path, generator)
    path = write_relion_star(tmp_path / "p.star", particles)
    back = read_particles(path)
    assert back.image_size == 6 and len(back) == 7
    for name in ("euler_deg", "shift_angstrom", "pixel_size_angstrom"):
        torch.testing.assert_close(getattr(back, name), getattr(particles, name), atol=2e-6, rtol=0)
    for f in dataclasses.fields(CTFParams):
        a, b = getattr(back.ctf, f.name), torch.as_tensor(getattr(particles.ctf, f.name))
        torch.testing.assert_close(a, b.expand(7).to(a.dtype), atol=2e-6, rtol=0)
    assert back.image_paths == particles.image_paths
    torch.testing.assert_close(read_images(back, [6, 0, 5]), images[[6, 0, 5]])
    blocks = starfile.read(path, always_dict=True)
    assert list(blocks) == ["optics", "particles"]
    assert blocks["particles"]["rlnImageName"].iloc[4] == "000001@b.mrcs"


def test_subset_and_new_image_names(tmp_path, generator):
    particles, images = _synthetic_set(tmp_path, generator)
    sub = particles.subset([5, 1])
    torch.testing.assert_close(sub.euler_deg, particles.euler_deg[[5, 1]])
    torch.testing.assert_close(sub.ctf.defocus_u_angstrom, particles.ctf.defocus_u_angstrom[[5, 1]])
    torch.testing.assert_close(read_images(sub, [0, 1]), images[[5, 1]])
    write_mrc(tmp_path / "c.mrcs", images[[5, 1]].flip(0), pixel_size_angstrom=1.5, stack=True)
    moved = sub.with_image_names(["2@c.mrcs", "1@c.mrcs"])
    torch.testing.assert_close(read_images(moved, [0, 1]), images[[5, 1]])
    mask = torch.zeros(7, dtype=torch.bool)
    mask[3] = True
    assert len(particles.subset(mask)) == 1


def test_iter_batches_covers_everything_in_order(tmp_path, generator):
    particles, images = _synthetic_set(tmp_path, generator)
    with ParticleStack(particles, max_open_files=1) as stack:
        chunks = list(stack.iter_batches(3))
    assert [len(i) for i, _ in chunks] == [3, 3, 1]
    torch.testing.assert_close(torch.cat([b for _, b in chunks]), images)


def test_index_past_stack_end(tmp_path, generator):
    particles, _ = _synthetic_set(tmp_path, generator)
    bad = particles.with_image_names([f"{i + 1}@b.mrcs" for i in range(7)])
    with pytest.raises(IndexError, match=r"b\.mrcs: image index 3 .*RELION index 4.*3 images"):
        read_images(bad, [0, 1, 2, 3])


def test_box_size_mismatch(tmp_path, generator):
    particles, _ = _synthetic_set(tmp_path, generator)
    wrong = dataclasses.replace(particles, image_size=8)
    with pytest.raises(ValueError, match=r"a\.mrcs: images are 6x6 .* box 8"):
        read_images(wrong, [0])


def test_missing_columns_are_listed(tmp_path):
    table = pd.DataFrame(
        {"rlnImageName": ["1@x.mrcs"], "rlnDefocusU": [1e4], "rlnVoltage": [300.0]}
    )
    starfile.write({"particles": table}, tmp_path / "m.star")
    with pytest.raises(
        ValueError, match=r"m\.star: missing required column\(s\) for CTF: rlnDefocusV"
    ):
        read_particles(tmp_path / "m.star", pixel_size_angstrom=1.0, image_size=8)
    table["rlnDefocusV"] = [1e4]
    starfile.write({"particles": table}, tmp_path / "m2.star")
    with pytest.raises(
        ValueError, match=r"m2\.star: .*CTF: rlnSphericalAberration, rlnAmplitudeContrast"
    ):
        read_particles(tmp_path / "m2.star", pixel_size_angstrom=1.0, image_size=8)
    starfile.write({"particles": table.drop(columns="rlnImageName")}, tmp_path / "m3.star")
    with pytest.raises(ValueError, match=r"m3\.star: missing required column\(s\).*rlnImageName"):
        read_particles(tmp_path / "m3.star", pixel_size_angstrom=1.0, image_size=8)


def test_missing_pixel_size_and_bad_optics_group(tmp_path):
    table = pd.DataFrame({"rlnImageName": ["1@x.mrcs"], "rlnAngleRot": [1.0]})
    starfile.write({"particles": table}, tmp_path / "p.star")
    with pytest.raises(ValueError, match=r"p\.star: no pixel size"):
        read_particles(tmp_path / "p.star", image_size=8)
    with pytest.raises(ValueError, match=r"p\.star: missing required column\(s\) for Euler"):
        read_particles(tmp_path / "p.star", image_size=8, pixel_size_angstrom=1.0)
    optics = pd.DataFrame({"rlnOpticsGroup": [1], "rlnImagePixelSize": [1.0], "rlnImageSize": [8]})
    parts = pd.DataFrame({"rlnImageName": ["1@x.mrcs"], "rlnOpticsGroup": [2]})
    starfile.write({"optics": optics, "particles": parts}, tmp_path / "g.star")
    with pytest.raises(ValueError, match=r"g\.star: particles refer to optics groups \[2\]"):
        read_particles(tmp_path / "g.star")


def test_bad_image_name(tmp_path):
    table = pd.DataFrame({"rlnImageName": ["1@x.mrcs", "zero@x.mrcs"]})
    starfile.write({"particles": table}, tmp_path / "n.star")
    with pytest.raises(ValueError, match=r"n\.star: row 1: image name 'zero@x\.mrcs'"):
        read_particles(tmp_path / "n.star", pixel_size_angstrom=1.0, image_size=8)


def test_write_refuses_existing_and_inconsistent_groups(tmp_path, generator):
    particles, _ = _synthetic_set(tmp_path, generator)
    path = write_relion_star(tmp_path / "p.star", particles)
    before = path.read_text()
    with pytest.raises(FileExistsError, match=r"p\.star"):
        write_relion_star(path, particles)
    pixel = particles.pixel_size_angstrom.clone()
    pixel[0] = 2.0
    with pytest.raises(ValueError, match="optics group 1: particles disagree on pixel size"):
        write_relion_star(
            path, dataclasses.replace(particles, pixel_size_angstrom=pixel), overwrite=True
        )
    assert path.read_text() == before
    two = dataclasses.replace(
        particles,
        pixel_size_angstrom=pixel,
        optics_group=torch.tensor([2, 1, 1, 1, 1, 1, 1]),
    )
    back = read_particles(write_relion_star(tmp_path / "two.star", two))
    torch.testing.assert_close(back.pixel_size_angstrom, pixel)
    assert back.optics_group.tolist() == [2, 1, 1, 1, 1, 1, 1]


def test_relion30_shift_in_pixels(tmp_path):
    table = pd.DataFrame(
        {
            "rlnImageName": ["1@x.mrcs", "2@x.mrcs"],
            "rlnOriginX": [2.0, -1.0],
            "rlnOriginY": [0.5, 3.0],
            "rlnMagnification": [10000.0, 10000.0],
            "rlnDetectorPixelSize": [2.0, 2.0],
        }
    )
    starfile.write({"images": table}, tmp_path / "s.star")
    particles = read_particles(tmp_path / "s.star", image_size=8)
    torch.testing.assert_close(
        particles.pixel_size_angstrom, torch.full((2,), 2.0, dtype=torch.float64)
    )
    expected = torch.tensor([[4.0, 1.0], [-2.0, 6.0]], dtype=torch.float64)
    torch.testing.assert_close(particles.shift_angstrom, expected)
    back = read_particles(write_relion_star(tmp_path / "o.star", particles))
    torch.testing.assert_close(back.shift_angstrom, expected)
    out = starfile.read(tmp_path / "o.star")
    assert "rlnOriginX" not in out["particles"] and "rlnMagnification" not in out["particles"]


def test_class2d_star_columns_round_trip(tmp_path, generator):
    particles, _ = _synthetic_set(tmp_path, generator)
    star = read_particles(write_relion_star(tmp_path / "in.star", particles))
    assert class_numbers(star) is None
    assignments = Assignments(
        class_index=torch.tensor([0, 2, 1, 0, 2, 2, 1]),
        psi_deg=torch.linspace(-170.0, 170.0, 7),
        shift_angstrom=torch.randn(7, 2, generator=generator),
        max_probability=torch.rand(7, generator=generator),
        log_likelihood=torch.randn(7, generator=generator, dtype=torch.float64),
    )
    path = write_class2d_star(tmp_path / "c.star", star, assignments)
    with pytest.raises(FileExistsError):
        write_class2d_star(path, star, assignments)
    table = starfile.read(path)["particles"]
    assert "rlnAngleRot" not in table and "rlnAngleTilt" not in table
    back = read_particles(path)
    assert not back.euler_deg[:, :2].any()  # only rlnAnglePsi is written
    torch.testing.assert_close(class_numbers(back), assignments.class_index + 1)
    torch.testing.assert_close(
        back.shift_angstrom, assignments.shift_angstrom.double(), atol=2e-6, rtol=0
    )
    for column, value in (
        ("rlnAnglePsi", assignments.psi_deg),
        ("rlnMaxValueProbDistribution", assignments.max_probability),
        ("rlnLogLikeliContribution", assignments.log_likelihood),
    ):
        torch.testing.assert_close(
            torch.as_tensor(table[column].to_numpy().copy()), value.double(), atol=2e-6, rtol=0
        )
    torch.testing.assert_close(back.ctf.defocus_u_angstrom, star.ctf.defocus_u_angstrom)


def test_latent_columns(tmp_path, generator):
    particles, _ = _synthetic_set(tmp_path, generator)
    star = read_particles(write_relion_star(tmp_path / "in.star", particles))
    rows = torch.tensor([4, 1])
    latents = torch.randn(7, 3, generator=generator)
    path = write_latent_star(tmp_path / "z.star", star.subset(rows), latents[rows])
    table = starfile.read(path)["particles"]
    got = torch.as_tensor(table[[f"rlnCryoglassLatent{j}" for j in (1, 2, 3)]].to_numpy().copy())
    torch.testing.assert_close(got, latents[rows].double(), atol=2e-6, rtol=0)
    names = starfile.read(tmp_path / "in.star")["particles"]["rlnImageName"]
    assert list(table["rlnImageName"]) == [names[4], names[1]]
