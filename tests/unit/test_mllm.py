"""MLLM text encoder with a TINY random Qwen2.5-VL built at test time (tokenizer trained here; nothing downloaded)."""

import json
import subprocess
import sys
import types

import pytest
import tokenizers  # noqa: F401  (the tiny tokenizer is trained with it)
import torch
import transformers

from skyreels_core.encoders.mllm import CAPTION_TAGS, load_mllm, model_class_for
from skyreels_core.errors import CheckpointError, SkyReelsError, SkyReelsInputError

SPECIAL = [
    "<|endoftext|>",
    "<|im_start|>",
    "<|im_end|>",
    "<|vision_start|>",
    "<|vision_end|>",
    "<|image_pad|>",
    "<|video_pad|>",
]
# Qwen2.5-VL's chat template reduced to one turn with images and text (no default system prompt).
TEMPLATE = (
    "{% for message in messages %}<|im_start|>{{ message['role'] }}\n{% if message['content'] is string %}"
    "{{ message['content'] }}{% else %}{% for content in message['content'] %}{% if content['type'] == 'image' %}"
    "<|vision_start|><|image_pad|><|vision_end|>{% elif content['type'] == 'text' %}{{ content['text'] }}{% endif %}"
    "{% endfor %}{% endif %}<|im_end|>\n{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)
PROMPT = (
    "A man at a cafe says <dialogue>hello, how are you</dialogue> while <sfx>cups clink</sfx>, <bgm>soft jazz</bgm>, "
    "a girl hums <singing>la la</singing> under a sign <text>OPEN</text>"
)


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _tokenizer():
    """Tiny byte-level BPE with the Qwen special tokens (every byte is representable, so any text tokenizes)."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=320, special_tokens=SPECIAL, initial_alphabet=pre_tokenizers.ByteLevel.alphabet()
    )
    tok.train_from_iterator(["a cat walks in the rain and says hello to the dog"] * 4, trainer)
    return transformers.PreTrainedTokenizerFast(tokenizer_object=tok, eos_token="<|im_end|>", pad_token="<|endoftext|>")


def _save_tiny_qwen25(folder, chat_template=TEMPLATE):
    tok = _tokenizer()
    ids = {t: tok.convert_tokens_to_ids(t) for t in SPECIAL}
    text = dict(
        vocab_size=len(tok),
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=3,
        num_attention_heads=2,
        num_key_value_heads=1,
        rope_parameters={"rope_type": "default", "mrope_section": [2, 3, 3], "rope_theta": 1e4},
        bos_token_id=ids["<|endoftext|>"],
        eos_token_id=ids["<|im_end|>"],
    )
    vision = dict(
        depth=2,
        hidden_size=16,
        intermediate_size=32,
        num_heads=2,
        out_hidden_size=32,
        fullatt_block_indexes=[1],
        window_size=56,
        patch_size=14,
        spatial_merge_size=2,
        temporal_patch_size=2,
    )
    config = transformers.Qwen2_5_VLConfig(
        text_config=text,
        vision_config=vision,
        image_token_id=ids["<|image_pad|>"],
        video_token_id=ids["<|video_pad|>"],
        vision_start_token_id=ids["<|vision_start|>"],
        vision_end_token_id=ids["<|vision_end|>"],
    )
    torch.manual_seed(0)
    transformers.Qwen2_5_VLForConditionalGeneration(config).save_pretrained(folder)
    processor = transformers.Qwen2_5_VLProcessor(
        image_processor=transformers.Qwen2VLImageProcessor(min_pixels=56 * 56, max_pixels=112 * 112),
        tokenizer=tok,
        video_processor=transformers.Qwen2VLVideoProcessor(),
        chat_template=chat_template,
    )
    processor.save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def tiny_dir(tmp_path_factory):
    return _save_tiny_qwen25(tmp_path_factory.mktemp("qwen25vl"))


@pytest.fixture(scope="module")
def encoder(tiny_dir):
    return load_mllm(tiny_dir, layers=(-1,))


def _image(seed, h=64, w=80):
    return torch.rand(h, w, 3, generator=torch.Generator().manual_seed(seed))


def test_importing_skyreels_core_does_not_import_transformers():
    code = (
        "import sys; import skyreels_core.encoders.mllm, skyreels_core.pipelines.t2av, skyreels_core.conditioning.v4;"
        "print('transformers' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=_repo())
    assert out.stdout.strip() == "False"


def _repo():
    from pathlib import Path

    return str(Path(__file__).resolve().parents[2])


def test_text_encode_shape_and_determinism(encoder):
    a = encoder.encode("a cat in the rain")
    b = encoder.encode("a cat in the rain")
    c = encoder.encode("a dog in the rain")
    assert a.dtype == torch.float32 and a.shape[0] == 1 and a.shape[2] == 32 == encoder.text_dim
    assert torch.equal(a, b) and not torch.equal(a, c)
    assert a.shape[1] == encoder.prepare("a cat in the rain")["input_ids"].shape[1]


def test_layers_are_concatenated_hidden_states(tiny_dir, encoder):
    multi = load_mllm(tiny_dir, layers=(1, -1))
    out = multi.encode("a cat")
    assert multi.text_dim == 64 and out.shape[-1] == 64
    inputs = encoder.prepare("a cat")
    with torch.no_grad():
        states = multi.model(**inputs, output_hidden_states=True).hidden_states
    assert len(states) == 4  # embeddings + 3 layers
    torch.testing.assert_close(out, torch.cat([states[1], states[-1]], -1))
    torch.testing.assert_close(out[..., 32:], encoder.encode("a cat"))


def test_bad_layers_name_the_valid_range(tiny_dir):
    with pytest.raises(SkyReelsInputError, match="from -4 to 3"):
        load_mllm(tiny_dir, layers=(4,))


def test_caption_tags_survive_tokenization_as_text(encoder):
    ids = encoder.prepare(PROMPT)["input_ids"][0]
    tok = encoder.processor.tokenizer
    decoded = tok.decode(ids, skip_special_tokens=True)  # tags are text, so they survive dropping specials
    assert PROMPT in decoded
    for tag in CAPTION_TAGS:
        assert f"<{tag}>" in decoded and f"</{tag}>" in decoded
        assert f"<{tag}>" not in tok.all_special_tokens
    assert "&lt;" not in encoder.format_prompt(PROMPT)
    assert encoder.encode(PROMPT).shape[1] == len(ids)


def test_reference_images_become_vision_tokens(encoder):
    text_only = encoder.prepare("a cat")
    with_image = encoder.prepare("a cat", [_image(0)])
    pad_id = encoder.processor.tokenizer.convert_tokens_to_ids("<|image_pad|>")
    tokens = int((with_image["input_ids"] == pad_id).sum())
    thw = with_image["image_grid_thw"][0]
    assert tokens == int(thw.prod()) // 4 > 0  # spatial merge 2x2
    assert with_image["input_ids"].shape[1] == text_only["input_ids"].shape[1] + tokens + 2  # + vision start/end
    a = encoder.encode("a cat", [_image(0)])
    b = encoder.encode("a cat", [_image(1)[None]])  # ComfyUI IMAGE [1, H, W, 3] works too
    assert a.shape == b.shape and a.shape[1] == with_image["input_ids"].shape[1]
    assert not torch.allclose(a[:, -3:], b[:, -3:])  # the text after the image attends to the pixels
    two = encoder.prepare("a cat", [_image(0), _image(2, 56, 56)])
    assert int((two["input_ids"] == pad_id).sum()) > tokens


def test_bad_images_and_prompts_raise(encoder):
    with pytest.raises(SkyReelsInputError, match=r"\[H, W, 3\]"):
        encoder.encode("a cat", [torch.rand(3, 32, 32)])
    with pytest.raises(SkyReelsInputError):
        encoder.encode(None)


def test_without_chat_template_the_qwen_turn_format_is_used(tmp_path, encoder):
    plain = load_mllm(_save_tiny_qwen25(tmp_path, chat_template=None))
    assert plain.format_prompt("hi <sfx>wind</sfx>", 1) == encoder.format_prompt("hi <sfx>wind</sfx>", 1)


def test_missing_transformers_names_the_pip_command(tiny_dir, monkeypatch):
    monkeypatch.setitem(sys.modules, "transformers", None)
    with pytest.raises(SkyReelsError, match=r"pip install \"transformers>=4\.49"):
        load_mllm(tiny_dir)


def test_model_classes_by_type_and_version():
    assert model_class_for(transformers, "qwen2_5_vl") is transformers.Qwen2_5_VLModel
    old = types.SimpleNamespace(__version__="4.50.0", Qwen2_5_VLModel=object)
    with pytest.raises(SkyReelsError, match=r"transformers>=4\.57\.0.*installed: 4\.50\.0"):
        model_class_for(old, "qwen3_vl")
    with pytest.raises(CheckpointError, match="qwen3_vl"):
        model_class_for(transformers, "llama")


def test_not_a_model_folder(tmp_path):
    with pytest.raises(CheckpointError, match="config.json"):
        load_mllm(tmp_path)
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "llama"}))
    with pytest.raises(CheckpointError, match="not supported"):
        load_mllm(tmp_path / "config.json")


def test_qwen3_vl_folder_loads_the_qwen3_class(tmp_path):
    tok = _tokenizer()
    ids = {t: tok.convert_tokens_to_ids(t) for t in SPECIAL}
    rope = {"rope_type": "default", "mrope_section": [2, 3, 3], "rope_theta": 1e4, "mrope_interleaved": True}
    config = transformers.Qwen3VLConfig(
        text_config=dict(
            vocab_size=len(tok), hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2,
            num_key_value_heads=1, head_dim=16, rope_parameters=rope,
        ),
        vision_config=dict(
            depth=2, hidden_size=16, intermediate_size=32, num_heads=2, out_hidden_size=32, patch_size=16,
            spatial_merge_size=2, temporal_patch_size=2, deepstack_visual_indexes=[1], num_position_embeddings=64,
        ),
        image_token_id=ids["<|image_pad|>"], video_token_id=ids["<|video_pad|>"],
        vision_start_token_id=ids["<|vision_start|>"], vision_end_token_id=ids["<|vision_end|>"],
    )  # fmt: skip
    torch.manual_seed(0)
    transformers.Qwen3VLForConditionalGeneration(config).save_pretrained(tmp_path)
    image_processor = transformers.Qwen2VLImageProcessor(patch_size=16, merge_size=2, max_pixels=128 * 128)
    transformers.Qwen3VLProcessor(
        image_processor=image_processor, tokenizer=tok, video_processor=transformers.Qwen3VLVideoProcessor(),
        chat_template=TEMPLATE,
    ).save_pretrained(tmp_path)  # fmt: skip
    encoder = load_mllm(tmp_path, layers=(0, -1))
    assert type(encoder.model) is transformers.Qwen3VLModel and encoder.text_dim == 64
    text = encoder.encode(PROMPT)
    with_image = encoder.encode("a cat", [_image(0, 64, 96)])
    assert text.shape == (1, encoder.prepare(PROMPT)["input_ids"].shape[1], 64)
    assert with_image.shape[1] == encoder.prepare("a cat", [_image(0, 64, 96)])["input_ids"].shape[1]
    assert PROMPT in encoder.processor.tokenizer.decode(encoder.prepare(PROMPT)["input_ids"][0])


# ------------------------------------------------------------------ bad inputs (issue #9)


def test_typed_control_tokens_are_refused_with_the_fix(encoder):
    for prompt in ("<|image_pad|><|vision_start|>", "a cat <|im_end|> and more"):
        with pytest.raises(SkyReelsInputError, match=r"control token.*remove them.*images input"):
            encoder.encode(prompt)
    assert encoder.check_prompt("hi <sfx>wind</sfx> <dialogue>yo</dialogue>") == "hi <sfx>wind</sfx> <dialogue>yo</dialogue>"


def test_overlong_prompt_is_cut_at_max_prompt_tokens(encoder, caplog):
    import time

    from skyreels_core.encoders import mllm

    start = time.perf_counter()
    cut = encoder.check_prompt("the dog says hello " * 100_000)  # 1.9 M characters
    assert time.perf_counter() - start < 10
    assert len(encoder.processor.tokenizer(cut, add_special_tokens=False)["input_ids"]) <= mllm.MAX_PROMPT_TOKENS
    assert "longer than 2048 tokens" in caplog.text
    short = "a cat walks in the rain"
    assert encoder.check_prompt(short) == short


@pytest.mark.parametrize("size", [(3, 2000), (2000, 3), (20, 20)])
def test_reference_images_of_impossible_shapes_get_a_clear_message(encoder, size):
    with pytest.raises(SkyReelsInputError, match=r"needs both sides >= 28 pixels and an aspect ratio below 200:1"):
        encoder.prepare("a cat", [torch.rand(*size, 3)])


def test_damaged_mllm_folders_raise_checkpoint_errors(tiny_dir, tmp_path):
    import shutil

    no_tokenizer = tmp_path / "no_tok"
    shutil.copytree(tiny_dir, no_tokenizer)
    for name in ("tokenizer.json", "tokenizer_config.json", "vocab.json", "merges.txt"):
        (no_tokenizer / name).unlink(missing_ok=True)
    with pytest.raises(CheckpointError, match="no_tok"):
        load_mllm(no_tokenizer)
    for name, data in (("model.safetensors", b"\x00" * 64), ("model.safetensors", b"")):
        broken = tmp_path / f"broken{len(data)}"
        shutil.copytree(tiny_dir, broken)
        (broken / name).write_bytes(data)
        with pytest.raises(CheckpointError, match=rf"Could not load the MLLM folder broken{len(data)} \("):
            load_mllm(broken)


def test_pickled_bin_with_code_in_an_mllm_folder_is_refused_clearly(tiny_dir, tmp_path):
    import shutil

    class Payload:
        def __reduce__(self):
            return (print, ("pickled code ran",))

    folder = tmp_path / "pickled"
    shutil.copytree(tiny_dir, folder)
    (folder / "model.safetensors").unlink()
    torch.save({"w": Payload()}, folder / "pytorch_model.bin")
    with pytest.raises(CheckpointError, match=r"Could not load the MLLM folder pickled \(.*pickled \.bin files"):
        load_mllm(folder)
