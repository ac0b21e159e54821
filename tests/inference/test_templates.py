"""Chat templates: built-ins, the server's own rendered locally, role swapping."""

import pytest

from broken_record.errors import ParrotError
from broken_record.inference import connect, templates

MSGS = [{"role": "system", "content": "S"}, {"role": "user", "content": "U1"},
        {"role": "assistant", "content": "A1"}, {"role": "user", "content": "U2"}]


@pytest.mark.parametrize("name, expected", [
    ("chatml", "<|im_start|>system\nS<|im_end|>\n<|im_start|>user\nU1<|im_end|>\n"
               "<|im_start|>assistant\nA1<|im_end|>\n<|im_start|>user\nU2<|im_end|>\n"
               "<|im_start|>assistant\n"),
    ("llama3", "<|start_header_id|>system<|end_header_id|>\n\nS<|eot_id|>"
               "<|start_header_id|>user<|end_header_id|>\n\nU1<|eot_id|>"
               "<|start_header_id|>assistant<|end_header_id|>\n\nA1<|eot_id|>"
               "<|start_header_id|>user<|end_header_id|>\n\nU2<|eot_id|>"
               "<|start_header_id|>assistant<|end_header_id|>\n\n"),
    ("gemma", "<start_of_turn>user\nS\n\nU1<end_of_turn>\n<start_of_turn>model\nA1<end_of_turn>\n"
              "<start_of_turn>user\nU2<end_of_turn>\n<start_of_turn>model\n"),
    ("mistral", "[INST] S\n\nU1 [/INST]A1</s>[INST] U2 [/INST]"),
    ("alpaca", "S\n\n### Instruction:\nU1\n\n### Response:\nA1\n\n### Instruction:\nU2\n\n"
               "### Response:\n"),
])
def test_builtin_templates(name, expected):
    assert templates.builtin(name).render(MSGS) == expected


def test_template_file(tmp_path):
    f = tmp_path / "t.jinja"
    f.write_text("{% for m in messages %}[{{ m.role }}]{{ m.content }}{% endfor %}"
                 "{% if add_generation_prompt %}[assistant]{% endif %}")
    assert templates.load(str(f)).render(MSGS[:2]) == "[system]S[user]U1[assistant]"


def test_sandbox_refuses_unsafe_template():
    evil = "{{ messages.__class__.__mro__[1].__subclasses__() }}"
    with pytest.raises(ParrotError):
        templates.ChatTemplate(evil, "evil").render(MSGS)


def test_server_template_rendered_locally_matches_apply_template(llama_server):
    engine = connect(llama_server.url)
    local = templates.load("server", engine.info.chat_template).render(MSGS)
    assert local == engine.apply_template(MSGS)
    # the template without a leading system message inserts its own default
    no_system = MSGS[1:]
    assert templates.load("server", engine.info.chat_template).render(no_system) == \
        engine.apply_template(no_system)


def test_swap_roles():
    assert templates.swap_roles(MSGS) == [
        {"role": "system", "content": "S"}, {"role": "assistant", "content": "U1"},
        {"role": "user", "content": "A1"}, {"role": "assistant", "content": "U2"}]
