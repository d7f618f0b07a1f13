# tests/test_string_helper.py, written by the LLM stand-in
VALUE = 1
