"""The frame retention branch: built from the base UNet, zero-initialised injections."""

import pytest
import torch

from dreamvideo.models import DreamVideoDenoiser, FrameRetentionBranch, is_temporal_parameter, mark_trainable
from dreamvideo.testing import tiny_unet


def _inputs(seed=0, batch=2, frames=3):
    g = torch.Generator().manual_seed(seed)
    latents = torch.randn(batch, 4, frames, 8, 8, generator=g)
    context = torch.randn(batch, 7, 32, generator=g)
    image = torch.rand(batch, 3, 64, 64, generator=g) * 2 - 1
    return latents, context, image


@pytest.mark.parametrize("timestep", [0, 437, 999])
def test_fresh_branch_keeps_base_prediction_exactly(timestep):
    unet = tiny_unet()
    branch = FrameRetentionBranch.from_unet(unet)
    denoiser = DreamVideoDenoiser(unet, branch).eval()
    latents, context, image = _inputs()
    with torch.no_grad():
        base = unet(latents, timestep, encoder_hidden_states=context).sample
        ours = denoiser(latents, timestep, context, image=image)
    assert torch.equal(base, ours)


def test_branch_copies_down_path_weights():
    unet = tiny_unet()
    branch = FrameRetentionBranch.from_unet(unet)
    for name in ("time_embedding", "transformer_in", "down_blocks", "mid_block"):
        ours, theirs = getattr(branch, name).state_dict(), getattr(unet, name).state_dict()
        assert ours.keys() == theirs.keys()
        assert all(torch.equal(ours[k], theirs[k]) for k in ours)
    # Input conv: base weights on the latent channels, random weights on the image channels
    # (only the output convs are zero, so the image path gets gradient from the first step).
    assert torch.equal(branch.conv_in.weight[:, :4], unet.conv_in.weight)
    assert branch.conv_in.weight[:, 4:].abs().sum() > 0
    assert all(p.abs().sum() == 0 for conv in branch.residual_convs for p in conv.parameters())


def test_one_residual_per_skip_connection_with_matching_shapes():
    unet = tiny_unet()
    branch = FrameRetentionBranch.from_unet(unet)
    latents, context, image = _inputs(frames=2)
    down, mid = branch(latents, 10, context, branch.encode_image(image))
    # conv_in output + (layers + downsampler) per block, none after the last block's resnets.
    assert len(down) == 1 + 2 + 1
    assert [d.shape[1] for d in down] == [16, 16, 16, 32]
    assert down[0].shape[0] == 2 * 2 and down[-1].shape[-1] == 4
    assert mid.shape == (4, 32, 4, 4)


def test_branch_learns_the_image_after_one_step():
    """The first step moves the zero output convs; from then on the reference image changes
    the prediction."""
    unet = tiny_unet()
    denoiser = DreamVideoDenoiser(unet, FrameRetentionBranch.from_unet(unet))
    optimizer = torch.optim.SGD(mark_trainable(unet, denoiser.branch), lr=1.0)
    latents, context, image = _inputs()
    denoiser(latents, 500, context, image=image).pow(2).mean().backward()
    assert denoiser.branch.residual_convs[0].weight.grad.abs().sum() > 0
    optimizer.step()
    with torch.no_grad():
        a = denoiser(latents, 500, context, image=image)
        b = denoiser(latents, 500, context, image=-image)
    assert not torch.allclose(a, b)


def test_mark_trainable_selects_branch_and_temporal_layers():
    unet = tiny_unet()
    branch = FrameRetentionBranch.from_unet(unet)
    params = mark_trainable(unet, branch)
    trainable_unet = {n for n, p in unet.named_parameters() if p.requires_grad}
    assert trainable_unet and all(is_temporal_parameter(n) for n in trainable_unet)
    assert any("temp_convs" in n for n in trainable_unet) and any(
        "temp_attentions" in n for n in trainable_unet
    )
    assert any(n.startswith("transformer_in") for n in trainable_unet)
    frozen = {n for n, p in unet.named_parameters() if not p.requires_grad}
    assert any(".attentions." in n for n in frozen) and any("resnets" in n for n in frozen)
    assert "conv_in.weight" in frozen and "conv_out.weight" in frozen
    assert all(p.requires_grad for p in branch.parameters())
    assert len(params) == len(list(branch.parameters())) + len(trainable_unet)

    mark_trainable(unet, branch, train_all=True)
    assert all(p.requires_grad for p in unet.parameters())


def test_branch_save_load_round_trip_is_bit_identical(tmp_path):
    unet = tiny_unet()
    branch = FrameRetentionBranch.from_unet(unet)
    with torch.no_grad():
        for p in branch.parameters():
            p.add_(torch.randn_like(p))
    branch.save_pretrained(tmp_path)
    assert (tmp_path / "diffusion_pytorch_model.safetensors").is_file()
    loaded = FrameRetentionBranch.from_pretrained(tmp_path, use_safetensors=True)
    a, b = branch.state_dict(), loaded.state_dict()
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_image_features_must_match_latents():
    unet = tiny_unet()
    branch = FrameRetentionBranch.from_unet(unet)
    latents, context, _ = _inputs()
    with pytest.raises(ValueError, match="do not match"):
        branch(latents, 1, context, torch.zeros(2, 4, 16, 16))


def test_image_encoder_type_other_than_strided_is_refused():
    """Folders saved with the key still load; the second design's other encoder is gone."""
    with pytest.raises(ValueError, match="image_encoder_type"):
        FrameRetentionBranch(image_encoder_type="space_to_depth")


@pytest.mark.parametrize(
    "additions",
    [
        {"frame_position_embedding": True},
        {"caption_time_embedding": True},
        {"frame_position_embedding": True, "caption_time_embedding": True},
    ],
)
def test_growing_a_trained_branch_keeps_its_prediction_until_the_additions_train(additions):
    """The third design's conditioning (frame index, pooled caption into the time embedding) is
    zero-initialised: a trained branch grown with it predicts exactly what it did (a warm start
    begins at the release), and once the new weights move, frames differ from each other."""
    from dreamvideo.testing import tiny_dreamvideo_pipeline

    pipe = tiny_dreamvideo_pipeline("clip", seed=0, randomize_branch=True)
    grown = pipe.retention_branch.with_config(**additions)
    assert all(grown.config[k] for k in additions)
    latents, context, image = _inputs(frames=4)
    before = DreamVideoDenoiser(pipe.unet, pipe.retention_branch).eval()
    after = DreamVideoDenoiser(pipe.unet, grown).eval()
    with torch.no_grad():
        assert torch.equal(
            before(latents, 500, context, image=image), after(latents, 500, context, image=image)
        )
        new = [
            p for n, p in grown.named_parameters() if n.startswith(("frame_embedding.", "caption_embedding."))
        ]
        assert new and any(p.abs().sum() == 0 for p in new)
        for p in new:
            p.add_(0.5 * torch.randn(p.shape, generator=torch.Generator().manual_seed(1)))
        moved = after(latents, 500, context, image=image)
    assert (moved - before(latents, 500, context, image=image)).abs().max() > 1e-4
    with pytest.raises(ValueError, match="do not keep the branch's weights"):
        grown.with_config(image_embed_channels=7)


def test_reference_first_frame_reaches_frame_zero_alone_and_keeps_the_trained_weights():
    """`reference_first_frame`: the reference's features enter frame 0 only, beside a mask
    channel. Grown from a trained branch, every old weight carries over and the mask's input
    weights start at zero; the branch's input then differs from the broadcast branch's on the
    other frames only (a change of conditioning, so the prediction is not kept)."""
    from dreamvideo.testing import tiny_dreamvideo_pipeline

    pipe = tiny_dreamvideo_pipeline("clip", seed=0, randomize_branch=True)
    branch = pipe.retention_branch.eval()
    grown = branch.with_config(reference_first_frame=True).eval()
    old = branch.conv_in.in_channels
    assert grown.conv_in.in_channels == old + 1
    assert torch.equal(grown.conv_in.weight[:, :old], branch.conv_in.weight)
    assert grown.conv_in.weight[:, old:].abs().sum() == 0
    latents, context, image = _inputs(frames=4)
    inputs = {}
    for name, b in (("broadcast", branch), ("first", grown)):
        b.conv_in.register_forward_hook(lambda m, args, out, name=name: inputs.__setitem__(name, args[0]))
        with torch.no_grad():
            b(latents, 500, context, b.encode_image(image))
    broadcast, first = inputs["broadcast"], inputs["first"]  # rows: video b, frame f at b * 4 + f
    frame = torch.arange(first.shape[0]) % 4
    assert torch.equal(first[frame == 0, :old], broadcast[frame == 0])
    assert torch.all(first[frame == 0, old] == 1) and torch.all(first[frame != 0, old] == 0)
    latent_channels = branch.config.in_channels
    assert torch.equal(first[frame != 0, :latent_channels], broadcast[frame != 0, :latent_channels])
    assert torch.all(first[frame != 0, latent_channels:old] == 0)
