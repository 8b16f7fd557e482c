# Writes protocols/golden/vectors.tsv: the bytes the Erlang VM writes for a set
# of values, which both the Python codec and the Elixir shim are tested against.
#
#     elixir protocols/golden/generate.exs
#
# Each vector is {name, elixir_expr, python_expr} or, when the bytes must be
# written with other options than `minor_version: 2`,
# {name, elixir_expr, python_expr, options}.
#
# Markers at the end of a name say how a row is checked:
#
#   @decode_only  the hex is an older or compressed form: only decoding is
#                 checked, because encoding gives the modern form.
#   @per_run      the value differs on every VM run (pids, references): the
#                 Elixir test only checks that the hex decodes to the same kind.
#   @map_order    a map with several atom keys: OTP 26 and later order such keys
#                 differently on each run, so there only the size and the decoded
#                 value are compared. The hex keeps OTP 25's (term) order.
#
# A python_expr of "@opaque" is filled in with Opaque(tag, payload) from the
# bytes the VM wrote; "@keys" in a python_expr becomes the list of the map's
# keys in the order the VM wrote them, for maps too large for term order.

vectors = [
  # integers: the VM picks the smallest of four encodings
  {"small_integer_zero", "0", "0"},
  {"small_integer_max", "255", "255"},
  {"integer_256", "256", "256"},
  {"integer_minus_one", "-1", "-1"},
  {"integer_max_i32", "2_147_483_647", "2147483647"},
  {"integer_min_i32", "-2_147_483_648", "-2147483648"},
  {"small_big_2_pow_31", "2_147_483_648", "2**31"},
  {"small_big_minus_2_pow_31_minus_1", "-2_147_483_649", "-(2**31) - 1"},
  {"small_big_2_pow_64", "18_446_744_073_709_551_616", "2**64"},
  {"small_big_negative", "-1_267_650_600_228_229_401_496_703_205_376", "-(2**100)"},
  {"large_big_2_pow_2100", "Integer.pow(2, 2100)", "2**2100"},
  {"large_big_negative", "-Integer.pow(3, 1500)", "-(3**1500)"},

  # floats
  {"float_one_and_a_half", "1.5", "1.5"},
  {"float_negative_zero", "-0.0", "-0.0"},
  {"float_pi", "3.141592653589793", "3.141592653589793"},
  {"float_smallest_denormal", "5.0e-324", "5e-324"},
  {"float_max", "1.7976931348623157e308", "1.7976931348623157e308"},
  {"float_negative", "-2.5e-10", "-2.5e-10"},
  {"float_ext_old@decode_only", "1.5", "1.5", [minor_version: 0]},

  # atoms
  {"atom_ok", ":ok", "Atom('ok')"},
  {"atom_true", "true", "True"},
  {"atom_false", "false", "False"},
  {"atom_nil", "nil", "None"},
  {"atom_nan", ":nan", "Atom('nan')"},
  {"atom_elixir_module", "PyBridge.Tensor", "Atom('Elixir.PyBridge.Tensor')"},
  {"atom_unicode", ~S(:"héllo_世界"), "Atom('héllo_世界')"},
  {"atom_utf8_long", ~S{String.to_atom(String.duplicate("é", 200))}, "Atom('é' * 200)"},
  {"atom_ext_latin1@decode_only", ~S(:"café"), "Atom('café')", [minor_version: 1]},

  # binaries and bitstrings
  {"binary_empty", ~S(""), "b''"},
  {"binary_ascii", ~S("hello"), "b'hello'"},
  {"binary_unicode", ~S("héllo 世界 🙂"), "'héllo 世界 🙂'.encode()"},
  {"binary_bytes", "<<0, 255, 1, 128>>", "bytes([0, 255, 1, 128])"},
  {"bitstring_3_bits", "<<1::3>>", "BitBinary(b'\\x20', 3)"},
  {"bitstring_11_bits", "<<0xAB, 5::3>>", "BitBinary(b'\\xab\\xa0', 3)"},

  # lists
  {"nil_empty_list", "[]", "[]"},
  {"string_ext_charlist", ~S(~c"hello"), "list(b'hello')"},
  {"string_ext_bytes", "[0, 255, 7]", "[0, 255, 7]"},
  {"list_ints_over_255", "[256, 1, 1000]", "[256, 1, 1000]"},
  {"list_mixed", ~S([1, :a, "b", 2.5, nil]), "[1, Atom('a'), b'b', 2.5, None]"},
  {"list_nested", "[[1], [[2, 300]], []]", "[[1], [[2, 300]], []]"},
  {"improper_list_int_tail", "[1, 2 | 3]", "ImproperList([1, 2], 3)"},
  {"improper_list_atom_tail", "[:a | :b]", "ImproperList([Atom('a')], Atom('b'))"},

  # tuples
  {"tuple_empty", "{}", "()"},
  {"tuple_nested", ~S({:ok, {1, {2.0, "x"}}}), "(Atom('ok'), (1, (2.0, b'x')))"},
  {"large_tuple_300", "List.to_tuple(Enum.to_list(1..300))", "tuple(range(1, 301))"},

  # maps
  {"map_empty", "%{}", "{}"},
  {"map_atom_keys@map_order", ~S(%{a: 1, b: "two", c: [3]}),
   "{Atom('a'): 1, Atom('b'): b'two', Atom('c'): [3]}"},
  {"map_mixed_keys", ~S(%{1 => :int, {1} => :tuple, "s" => :binary}),
   "{1: Atom('int'), (1,): Atom('tuple'), b's': Atom('binary')}"},
  {"map_list_key", "%{[1, 2] => :x}", "{HashableList([1, 2]): Atom('x')}"},
  {"map_map_key", "%{%{a: [1]} => 2}", "{FrozenMap({Atom('a'): [1]}): 2}"},
  {"map_nested", "%{data: %{items: [%{id: 1}]}}",
   "{Atom('data'): {Atom('items'): [{Atom('id'): 1}]}}"},
  {"map_tensor_struct@map_order",
   "%{__struct__: PyBridge.Tensor, data: <<0, 0, 128, 63>>, shape: {1}, type: {:f, 32}}",
   "{Atom('__struct__'): Atom('Elixir.PyBridge.Tensor'), Atom('data'): b'\\x00\\x00\\x80\\x3f', " <>
     "Atom('shape'): (1,), Atom('type'): (Atom('f'), 32)}"},
  {"map_hashmap_40_keys@map_order", "Map.new(1..40, &{&1, &1 * 2})", "{k: k * 2 for k in @keys}"},
  {"map_error@map_order", ~S(%{type: :bad_input, message: "expected a string", retryable: false}),
   "{Atom('message'): b'expected a string', Atom('retryable'): False, Atom('type'): Atom('bad_input')}"},

  # protocol messages
  {"message_run", ~S({:run, 7, ["hi", "there"], %{stream: false}}),
   "(Atom('run'), 7, [b'hi', b'there'], {Atom('stream'): False})"},
  {"message_ping", "{:ping, 123_456_789_012}", "(Atom('ping'), 123456789012)"},

  # pids, ports, references and funs pass through as Opaque
  {"pid@per_run", "self()", "@opaque"},
  {"reference@per_run", "make_ref()", "@opaque"},
  {"port@per_run", "hd(Port.list())", "@opaque"},
  {"export_fun", "&:erlang.self/0", "@opaque"},

  # a compressed term: the VM only compresses when asked
  {"compressed_binary@decode_only", ~S{String.duplicate("abc", 1000)}, "b'abc' * 1000",
   [:compressed, minor_version: 2]}
]

rows =
  for vector <- vectors do
    {name, elixir_expr, python_expr, options} =
      case vector do
        {name, elixir_expr, python_expr} -> {name, elixir_expr, python_expr, [minor_version: 2]}
        {_name, _elixir_expr, _python_expr, _options} = full -> full
      end

    {value, _binding} = Code.eval_string(elixir_expr)
    bytes = :erlang.term_to_binary(value, options)

    python_expr =
      case python_expr do
        "@opaque" ->
          <<131, tag, payload::binary>> = bytes
          "Opaque(#{tag}, bytes.fromhex('#{Base.encode16(payload, case: :lower)}'))"

        expr ->
          # Map.keys/1 walks a map in the order term_to_binary writes it; the
          # Python test, which re-encodes the expected value, proves it.
          if String.contains?(expr, "@keys") do
            String.replace(expr, "@keys", inspect(Map.keys(value), limit: :infinity))
          else
            expr
          end
      end

    for field <- [name, elixir_expr, python_expr], String.contains?(field, ["\t", "\n"]) do
      raise ArgumentError, "vector #{name}: fields must not contain tabs or newlines"
    end

    Enum.join([name, Base.encode16(bytes, case: :lower), elixir_expr, python_expr], "\t")
  end

header = """
# Golden ETF vectors, written by protocols/golden/generate.exs on OTP #{System.otp_release()}; do not edit by hand.
# Columns, tab-separated: name, hex, elixir_expr, python_expr.
#   hex: :erlang.term_to_binary(value, minor_version: 2) of the value of elixir_expr, as the VM wrote it.
#   python_expr: a Python expression, over Atom, BitBinary, ImproperList, Opaque, HashableList and FrozenMap
#     from py_bridge.etf, for what the Python decoder returns.
# Name markers: @decode_only (check decoding only), @per_run (value differs per VM run),
#   @map_order (OTP 26+ may order the atom keys differently). See generate.exs.
"""

path = Path.join(__DIR__, "vectors.tsv")
File.write!(path, [header, Enum.join(rows, "\n"), "\n"])
IO.puts("wrote #{length(rows)} vectors to #{Path.relative_to_cwd(path)}")
