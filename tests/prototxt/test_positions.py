"""prototxt.positions: where top-level fields sit in protobuf text."""
from prototxt.positions import field_positions

TEXT = '''# test_iter: 1 in a comment
net: "a test_iter: b.prototxt"
test_iter: 3   test_iter : 4
test_state { stage: "x" test_iter: 9 }
net_param { layer { name: "test_iter" } }
test_iter
  { }
solver_mode: GPU
test_iter: 5
'''


def test_top_level_fields_only_outside_strings_comments_and_messages():
    assert field_positions(TEXT, "test_iter") == [(3, 1), (3, 16), (6, 1), (9, 1)]
    assert field_positions(TEXT, "test_state") == [(4, 1)]
    assert field_positions(TEXT, "stage") == []
    assert field_positions(TEXT, "GPU") == []
    assert field_positions("", "net") == []
