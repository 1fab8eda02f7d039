"""Model zoo: every registered model trains on 48x48 grayscale, documented configs build,
pretrained weights load from local files only."""
from __future__ import annotations

import huggingface_hub.constants
import pytest
import safetensors.torch
import timm
import torch
import torch.nn as nn

from fer_search.errors import UserError
from timm.layers.cbam import CbamModule, ChannelAttn

from fer_search.models import (
    count_parameters,
    create_initialised_model,
    create_model,
    describe_models,
    list_models,
    model_family,
    model_hparams,
    model_normalization,
)

# Cheaper than the defaults where those are large, so the suite stays fast on a 2-core CPU.
SMALL_HPARAMS = {"resnet34": {"stem": "imagenet"}, "resnet50": {"stem": "imagenet"}}

# The layouts the series' notebooks ran, with the parameter counts they printed (attention_cnn's: calculated).
SERIES = {
    "simple_cnn baseline": ("simple_cnn", dict(widths=(64,), batch_norm=False, fc_width=128, dropout=0.0), 4_720_263),
    "simple_cnn v1": ("simple_cnn", dict(batch_norm=False, bias_before_bn=True), 2_456_071),
    "simple_cnn v2": ("simple_cnn", dict(bias_before_bn=True), 2_456_519),
    "deeper_cnn v1": ("deeper_cnn", dict(widths=(32, 64, 128, 256), convs_per_block=(2, 2, 2, 1), spatial_dropout=0.0,
                                         fc_width=(512, 256), dropout=0.5, bias_before_bn=True), 849_255),
    "deeper_cnn v2": ("deeper_cnn", dict(convs_per_block=(2, 2, 2, 1), spatial_dropout=(0.1, 0.2, 0.3, 0.4),
                                         fc_width=(256, 128), dropout=0.6, bias_before_bn=True), 593_063),
    "attention_cnn": ("attention_cnn", dict(bias_before_bn=True), 333_415),
    "resnet18": ("resnet18", dict(stem="imagenet", imagenet_input=True), 11_180_103),
    "resnet34": ("resnet34", dict(stem="imagenet", imagenet_input=True), 21_288_263),
    "resnet50": ("resnet50", dict(stem="imagenet", imagenet_input=True), 23_522_375),
}
DOCUMENTED = {
    **{label: (name, hparams) for label, (name, hparams, _) in SERIES.items() if not label.startswith("resnet")},
    "README's simple_cnn v1 (never ran)": ("simple_cnn", dict(widths=(32, 64), kernel_size=5, fc_width=128,
                                                              batch_norm=False, dropout=0.3, dropout_before_fc=True)),
    "attention_cnn with real CBAM": ("attention_cnn", dict(attention="cbam", reduction=16)),
    "resnet18 small stem": ("resnet18", dict(stem="small", dropout=0.3)),
    "resnet18 imagenet stem": ("resnet18", dict(stem="imagenet", dropout=0.5)),
    "vit resized (tiny)": ("vit", dict(mode="resized")),
    "mobilevit_xxs at 48 (its default)": ("mobilevit_xxs", dict()),
}


def batch(n: int = 2, in_chans: int = 1) -> torch.Tensor:
    return torch.randn(n, in_chans, 48, 48, generator=torch.Generator().manual_seed(0))


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


@pytest.mark.parametrize("name", list_models())
def test_every_model_trains_on_fer_batches(name):
    model = create_model(name, **SMALL_HPARAMS.get(name, {})).train()
    logits = model(batch())
    assert logits.shape == (2, 7)
    assert torch.isfinite(logits).all()
    nn.functional.cross_entropy(logits, torch.tensor([0, 6])).backward()
    for param_name, param in model.named_parameters():
        assert param.grad is not None and torch.isfinite(param.grad).all(), param_name


@pytest.mark.parametrize("label", DOCUMENTED)
def test_documented_configs_build_and_run(label):
    name, hparams = DOCUMENTED[label]
    model = create_model(name, **hparams).eval()
    with torch.no_grad():
        assert model(batch()).shape == (2, 7)


@pytest.mark.parametrize("label", SERIES)
def test_the_series_layouts_have_the_parameter_counts_its_notebooks_printed(label):
    name, hparams, count = SERIES[label]
    assert count_parameters(create_model(name, **hparams)) == count


def test_simple_cnn_runs_3x3_convs_with_one_dropout_after_fc1():
    model = create_model("simple_cnn")
    convs = [m for m in model.modules() if isinstance(m, nn.Conv2d)]
    assert [(m.out_channels, m.kernel_size) for m in convs] == [(32, (3, 3)), (64, (3, 3)), (128, (3, 3))]
    head = [type(m).__name__ for m in model.classifier]
    assert head == ["Flatten", "Linear", "ReLU", "Dropout", "Linear"]
    assert (model.classifier[1].in_features, model.classifier[1].out_features) == (128 * 6 * 6, 512)
    readme = create_model("simple_cnn", dropout_before_fc=True)
    assert [type(m).__name__ for m in readme.classifier][:3] == ["Flatten", "Dropout", "Linear"]


def test_deeper_cnn_v1_has_the_notebooks_seven_convs():
    name, hparams = DOCUMENTED["deeper_cnn v1"]
    model = create_model(name, **hparams)
    convs = [m.out_channels for m in model.modules() if isinstance(m, nn.Conv2d)]
    assert convs == [32, 32, 64, 64, 128, 128, 256]
    assert [m.out_features for m in model.modules() if isinstance(m, nn.Linear)] == [512, 256, 7]
    assert len([m for m in model.modules() if isinstance(m, nn.BatchNorm1d)]) == 2  # "FC layers with BatchNorm"


def test_deeper_cnn_v2_has_a_spatial_dropout_per_block_and_the_smaller_head():
    name, hparams = DOCUMENTED["deeper_cnn v2"]
    model = create_model(name, **hparams)
    assert [m.out_channels for m in model.modules() if isinstance(m, nn.Conv2d)][-1] == 192
    assert [m.p for m in model.modules() if isinstance(m, nn.Dropout2d)] == [0.1, 0.2, 0.3, 0.4]
    assert [m.out_features for m in model.modules() if isinstance(m, nn.Linear)] == [256, 128, 7]
    # One number: the first half of the blocks, as before (model files keep their layer numbers).
    one = create_model("deeper_cnn", convs_per_block=1, spatial_dropout=0.1)
    assert [m.p for m in one.modules() if isinstance(m, nn.Dropout2d)] == [0.1, 0.1]
    with pytest.raises(UserError, match="one per width"):
        create_model("deeper_cnn", convs_per_block=(2, 2))


def test_attention_cnn_gates_channels_only_as_the_notebook_did():
    model = create_model("attention_cnn")
    modules = list(model.modules())
    gates = [m for m in modules if isinstance(m, ChannelAttn)]
    assert len(gates) == 6 and [g.fc1.out_channels for g in gates[::2]] == [4, 8, 16]  # reduction 8
    assert not any(isinstance(m, CbamModule) for m in modules)  # no spatial map
    cbam = create_model("attention_cnn", attention="cbam")
    assert sum(isinstance(m, CbamModule) for m in cbam.modules()) == 3


def test_resnet_imagenet_input_feeds_224_pixels_in_three_imagenet_normalised_channels():
    model = create_model("resnet18", stem="imagenet", imagenet_input=True).eval()
    seen = {}
    model.net.conv1.register_forward_hook(lambda module, inputs, output: seen.update(x=inputs[0]))
    with torch.no_grad():
        model(torch.full((1, 1, 48, 48), 0.5))
    mean, std = torch.tensor([0.485, 0.456, 0.406]), torch.tensor([0.229, 0.224, 0.225])
    assert seen["x"].shape == (1, 3, 224, 224)
    torch.testing.assert_close(seen["x"][0, :, 100, 100], (0.5 - mean) / std)
    assert model.net.conv1.kernel_size == (7, 7) and isinstance(model.net.maxpool, nn.MaxPool2d)
    with pytest.raises(UserError, match="imagenet_input"):
        create_model("resnet18", stem="small", imagenet_input=True)


def test_input_scaling_is_declared_by_vit_and_the_series_resnet_input_only():
    assert model_normalization("vit") == (0.5, 0.5)
    assert model_normalization("resnet18", {"imagenet_input": True}) == (0.0, 1.0)  # 0..1 pixels, normalised inside
    assert all(model_normalization(name) is None for name in list_models() if name != "vit")


def test_resnet_stems():
    small = create_model("resnet18", stem="small")
    imagenet = create_model("resnet18", stem="imagenet")
    assert small.conv1.kernel_size == (3, 3) and small.conv1.stride == (1, 1) and isinstance(small.maxpool, nn.Identity)
    assert imagenet.conv1.kernel_size == (7, 7) and imagenet.conv1.stride == (2, 2)
    assert small.conv1.in_channels == 1


@pytest.mark.parametrize("name", ["simple_cnn", "resnet18"])
def test_in_chans_3(name):
    model = create_model(name, in_chans=3, **SMALL_HPARAMS.get(name, {})).eval()
    with torch.no_grad():
        assert model(batch(in_chans=3)).shape == (2, 7)


def test_registry_queries():
    assert {"simple_cnn", "deeper_cnn", "attention_cnn", "resnet18", "resnet34", "resnet50", "vit", "mobilevit_xxs"} <= set(list_models())
    assert list_models("resnet") == ["resnet18", "resnet34", "resnet50"]
    assert model_family("mobilevit_xxs") == "mobilevit"
    assert model_hparams("resnet18") == {"stem": "small", "dropout": 0.3, "zero_init_residual": False,
                                         "drop_path": 0.0, "preact": False, "imagenet_input": False}
    rows = {row["name"]: row for row in describe_models()}
    assert rows["simple_cnn"]["family"] == "simple_cnn"
    assert rows["simple_cnn"]["parameters"] == count_parameters(create_model("simple_cnn"))


def test_unknown_model_lists_known_names():
    with pytest.raises(UserError, match="unknown model 'resnet9'.*resnet18"):
        create_model("resnet9")


def test_unknown_hparam_names_it_and_lists_accepted():
    with pytest.raises(UserError, match="'?depth'?.*accepted: widths, kernel_size"):
        create_model("simple_cnn", depth=3)


@pytest.mark.parametrize(
    "name, hparams",
    [("resnet18", {"stem": "tiny"}), ("vit", {"mode": "native", "variant": "vit_base_patch16_224"}),
     ("simple_cnn", {"kernel_size": 4}), ("attention_cnn", {"attention": "spatial"})],
)
def test_bad_hparam_values_are_user_errors(name, hparams):
    with pytest.raises(UserError):
        create_model(name, **hparams)


def test_pretrained_file_round_trip(tmp_path):
    source = create_model("deeper_cnn").eval()
    path = tmp_path / "weights.pt"
    torch.save(source.state_dict(), path)
    loaded = create_model("deeper_cnn", pretrained=path).eval()
    with torch.no_grad():
        torch.testing.assert_close(loaded(batch()), source(batch()))


def test_pretrained_checkpoint_dict_and_new_head(tmp_path, caplog):
    source = create_model("simple_cnn", num_classes=5).eval()
    path = tmp_path / "model.pt"
    torch.save({"format": "fer_search.model/1", "state_dict": source.state_dict()}, path)
    loaded = create_model("simple_cnn", pretrained=str(path))  # 7 classes: the 5-class head is skipped
    torch.testing.assert_close(loaded.features[0].weight, source.features[0].weight)
    assert "classifier.4.weight" in caplog.text


def test_pretrained_rgb_stem_is_summed_to_grayscale(tmp_path):
    rgb = create_model("resnet18", in_chans=3, stem="imagenet")
    path = tmp_path / "rgb.pt"
    torch.save({"model": rgb.state_dict()}, path)
    gray = create_model("resnet18", in_chans=1, stem="imagenet", pretrained=path)
    torch.testing.assert_close(gray.conv1.weight, rgb.conv1.weight.sum(dim=1, keepdim=True))
    torch.testing.assert_close(gray.layer4[1].conv2.weight, rgb.layer4[1].conv2.weight)


def test_raw_timm_state_dict_loads_into_wrapped_model(tmp_path):
    wrapped = create_model("mobilevit_xxs")
    path = tmp_path / "timm.pt"
    torch.save(wrapped.net.state_dict(), path)  # as timm would save it: no "net." prefix
    loaded = create_model("mobilevit_xxs", pretrained=path)
    torch.testing.assert_close(loaded.net.stem.conv.weight, wrapped.net.stem.conv.weight)


def test_pretrained_from_another_architecture_is_a_user_error(tmp_path):
    path = tmp_path / "other.pt"
    torch.save(create_model("attention_cnn").state_dict(), path)
    with pytest.raises(UserError, match="do not fit"):
        create_model("resnet18", pretrained=path)


@pytest.mark.parametrize("content", [b"not a checkpoint", None])
def test_unreadable_or_missing_pretrained_file_is_a_user_error(tmp_path, content):
    path = tmp_path / "weights.pt"
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(UserError, match=str(path)):
        create_model("simple_cnn", pretrained=path)


@pytest.fixture
def empty_hf_cache(tmp_path, monkeypatch):
    cache = tmp_path / "hub"
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(cache))
    return cache


def test_timm_pretrained_absent_offline_is_a_user_error(empty_hf_cache):
    offline_before = huggingface_hub.constants.HF_HUB_OFFLINE
    with pytest.raises(UserError, match="vit_tiny_patch16_224 not found offline.*pretrained=PATH"):
        create_model("vit", mode="resized", pretrained="timm")
    assert huggingface_hub.constants.HF_HUB_OFFLINE == offline_before  # offline mode is scoped to the call


def test_timm_pretrained_loads_from_local_cache(empty_hf_cache):
    # Lay out timm's resnet18 weights as the Hugging Face cache stores a download.
    timm_resnet = timm.create_model("resnet18")
    repo = empty_hf_cache / "models--timm--resnet18.a1_in1k"
    commit = "0" * 40
    (repo / "snapshots" / commit).mkdir(parents=True)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(commit)
    safetensors.torch.save_file(timm_resnet.state_dict(), repo / "snapshots" / commit / "model.safetensors")

    model = create_model("resnet18", stem="imagenet", pretrained="timm")
    torch.testing.assert_close(model.conv1.weight, timm_resnet.conv1.weight.sum(dim=1, keepdim=True))
    torch.testing.assert_close(model.layer3[0].downsample[0].weight, timm_resnet.layer3[0].downsample[0].weight)


def _cache_timm_weights(cache, timm_name: str, hub_id: str) -> nn.Module:
    """Lay out timm's (here: freshly initialised) weights as the Hugging Face cache stores a download."""
    timm_model = timm.create_model(timm_name)
    repo = cache / f"models--timm--{hub_id}"
    commit = "0" * 40
    (repo / "snapshots" / commit).mkdir(parents=True)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(commit)
    safetensors.torch.save_file(timm_model.state_dict(), repo / "snapshots" / commit / "model.safetensors")
    return timm_model


def test_mobilevit_timm_if_cached_loads_cached_weights_else_says_random_init(empty_hf_cache):
    model, init = create_initialised_model("mobilevit_xxs", pretrained="timm_if_cached", input_size=224)
    assert init == "random init: pretrained weights for mobilevit_xxs not found offline; pass a local file with " \
                   "pretrained=PATH"
    timm_model = _cache_timm_weights(empty_hf_cache, "mobilevit_xxs", "mobilevit_xxs.cvnets_in1k")
    model, init = create_initialised_model("mobilevit_xxs", pretrained="timm_if_cached", input_size=224)
    assert init == "timm's pretrained weights (local cache)"
    torch.testing.assert_close(model.net.stem.conv.weight, timm_model.stem.conv.weight.sum(dim=1, keepdim=True))
    torch.testing.assert_close(model.net.stages[4][1].transformer[0].attn.qkv.weight,
                               timm_model.stages[4][1].transformer[0].attn.qkv.weight)
    assert model.net.head.fc.out_features == 7


def test_timm_pretrained_for_a_model_without_timm_weights_is_a_user_error():
    with pytest.raises(UserError, match="no timm pretrained weights"):
        create_model("simple_cnn", pretrained="timm")


def test_resnet_recipe_options():
    zero = create_model("resnet18", zero_init_residual=True)
    assert all(float(b.bn2.weight.abs().sum()) == 0 for layer in (zero.layer1, zero.layer4) for b in layer)
    deep = create_model("resnet18", drop_path=0.2)
    rates = [b.bn2[1].p for layer in (deep.layer1, deep.layer2, deep.layer3, deep.layer4) for b in layer]
    assert rates[0] == 0 and rates[-1] == pytest.approx(0.2) and rates == sorted(rates)
    preact = create_model("resnet18", preact=True, drop_path=0.1)
    assert count_parameters(preact) == pytest.approx(count_parameters(create_model("resnet18")), rel=0.01)
    assert preact.train()(batch(2)).shape == (2, 7) and preact(batch(2, 1)[..., :44, :44]).shape == (2, 7)
    with pytest.raises(UserError, match="drop_path"):
        create_model("resnet18", drop_path=1.5)


def test_vgg_stages_and_crop_sizes():
    model = create_model("vgg", widths=(16, 32, 64), convs_per_stage=3, fc_layers=2, fc_width=64)
    convs = [m for m in model.features if isinstance(m, nn.Conv2d)]
    assert len(convs) == 9 and convs[-1].out_channels == 64
    assert sum(isinstance(m, nn.Linear) for m in model.classifier) == 3
    for side in (40, 44, 48):  # global pooling: trains on crops, tests on ten crops
        assert model.eval()(torch.zeros(2, 1, side, side)).shape == (2, 7)
