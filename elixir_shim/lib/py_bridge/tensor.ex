defmodule PyBridge.Tensor do
  @moduledoc """
  A tensor as it crosses the wire: Nx's type name, a shape and little-endian bytes.

  When the host application has `Nx`, servings return `Nx.Tensor`s and accept
  them as input; this struct is what they use when it does not. Converting is
  one call either way:

      tensor = PyBridge.Tensor.from_list([1.0, 2.0, 3.0], {:f, 32})
      PyBridge.Tensor.to_list(tensor)
      #=> [1.0, 2.0, 3.0]

      nx_tensor = PyBridge.Tensor.to_nx(tensor)   # needs Nx
      PyBridge.Tensor.from_nx(nx_tensor)

  The data is row-major and holds exactly `size * bits / 8` bytes, the layout
  `Nx.from_binary/2` and `torch.frombuffer` share, so a conversion copies
  nothing beyond what the wire needs.
  """

  @enforce_keys [:data, :type, :shape]
  defstruct [:data, :type, :shape]

  @type type ::
          {:u, 8 | 16 | 32 | 64} | {:s, 8 | 16 | 32 | 64} | {:f, 16 | 32 | 64} | {:bf, 16}
  @type t :: %__MODULE__{data: binary(), type: type(), shape: tuple()}

  @types [
    {:u, 8},
    {:u, 16},
    {:u, 32},
    {:u, 64},
    {:s, 8},
    {:s, 16},
    {:s, 32},
    {:s, 64},
    {:f, 16},
    {:bf, 16},
    {:f, 32},
    {:f, 64}
  ]

  @doc """
  Wraps a binary. Raises `ArgumentError` when its size does not match.
  """
  @spec new(binary(), type(), tuple()) :: t()
  def new(data, type, shape) when is_binary(data) and is_tuple(shape) do
    validate_type!(type)
    expected = (size(shape) * elem(type, 1)) |> div(8)

    if byte_size(data) != expected do
      raise ArgumentError,
            "a tensor of type #{inspect(type)} and shape #{inspect(shape)} needs #{expected} bytes, " <>
              "got: #{byte_size(data)}"
    end

    %__MODULE__{data: data, type: type, shape: shape}
  end

  @doc """
  Builds a tensor from a flat or nested list of numbers.

  `nested` lists give the shape; a flat list is rank 1.
  """
  @spec from_list(list(), type()) :: t()
  def from_list(list, type) when is_list(list) do
    validate_type!(type)
    shape = list_shape(list)
    data = for x <- List.flatten(list), into: <<>>, do: encode_number(x, type)
    new(data, type, shape)
  end

  @doc "The tensor's values as a nested list (a number for rank 0)."
  @spec to_list(t()) :: list() | number()
  def to_list(%__MODULE__{data: data, type: type, shape: shape}) do
    flat =
      for <<chunk::binary-size(div(elem(type, 1), 8)) <- data>>, do: decode_number(chunk, type)

    nest(flat, Tuple.to_list(shape))
  end

  @doc "The tensor's values as a flat list, row-major."
  @spec to_flat_list(t()) :: [number()]
  def to_flat_list(%__MODULE__{} = tensor),
    do: tensor |> to_list() |> List.wrap() |> List.flatten()

  @doc false
  # The first `count` values, row-major, read without decoding the rest.
  @spec take_flat(t(), non_neg_integer()) :: [number() | atom()]
  def take_flat(%__MODULE__{data: data, type: type}, count) do
    width = div(elem(type, 1), 8)
    head = binary_part(data, 0, min(count * width, byte_size(data)))
    for <<chunk::binary-size(width) <- head>>, do: decode_number(chunk, type)
  end

  @doc "The raw little-endian bytes."
  @spec to_binary(t()) :: binary()
  def to_binary(%__MODULE__{data: data}), do: data

  @doc "The shape, as a tuple."
  @spec shape(t()) :: tuple()
  def shape(%__MODULE__{shape: shape}), do: shape

  @doc "The type, in Nx's names."
  @spec type(t()) :: type()
  def type(%__MODULE__{type: type}), do: type

  @doc "The number of elements."
  @spec size(t() | tuple()) :: non_neg_integer()
  def size(%__MODULE__{shape: shape}), do: size(shape)
  def size(shape) when is_tuple(shape), do: shape |> Tuple.to_list() |> Enum.reduce(1, &(&1 * &2))

  @doc """
  Converts to an `Nx.Tensor` on Nx's binary backend. Requires Nx.
  """
  @spec to_nx(t()) :: struct()
  def to_nx(%__MODULE__{data: data, type: type, shape: shape}) do
    ensure_nx!()
    # apply/3 keeps this module free of a compile-time dependency on Nx.
    tensor = apply(Nx, :from_binary, [data, type, [backend: Nx.BinaryBackend]])
    apply(Nx, :reshape, [tensor, shape])
  end

  @doc """
  Converts an `Nx.Tensor` (any backend) to a `PyBridge.Tensor`. Requires Nx.

  A tensor on `Nx.BinaryBackend` keeps its binary: nothing is copied. One on
  another backend (EXLA, Torchx) is read back to the host once.

  Raises `ArgumentError` for a vectorized tensor or a type the wire does not
  carry (complex numbers, 8-bit floats, sub-byte integers).
  """
  @spec from_nx(struct()) :: t()
  def from_nx(%{__struct__: Nx.Tensor} = tensor) do
    ensure_nx!()

    if Map.get(tensor, :vectorized_axes, []) != [] do
      raise ArgumentError,
            "expected a tensor that is not vectorized, got one with vectorized axes " <>
              "#{inspect(tensor.vectorized_axes)}; call Nx.devectorize/2 first"
    end

    type = apply(Nx, :type, [tensor])

    unless type in @types do
      raise ArgumentError,
            "cannot send a tensor of type #{inspect(type)} to the worker, expected one of #{inspect(@types)}"
    end

    %__MODULE__{
      data: apply(Nx, :to_binary, [tensor]),
      type: type,
      shape: apply(Nx, :shape, [tensor])
    }
  end

  @doc """
  Returns `true` when `Nx` is available to this application.
  """
  @spec nx_available?() :: boolean()
  def nx_available?, do: PyBridge.Optional.available?(Nx)

  @doc false
  # Output tensors become Nx tensors when the host has Nx, as in Bumblebee.
  @spec from_wire(term()) :: term()
  def from_wire(%__MODULE__{} = tensor) do
    if nx_available?(), do: to_nx(tensor), else: tensor
  end

  def from_wire(map) when is_map(map) and not is_struct(map),
    do: Map.new(map, fn {k, v} -> {k, from_wire(v)} end)

  def from_wire(list) when is_list(list), do: Enum.map(list, &from_wire/1)
  def from_wire(other), do: other

  @doc false
  # Any tensor-like input (Nx or our struct) in the form the wire carries.
  @spec to_wire(term()) :: t() | nil
  def to_wire(%__MODULE__{} = tensor), do: tensor
  def to_wire(%{__struct__: Nx.Tensor} = tensor), do: from_nx(tensor)
  def to_wire(_other), do: nil

  @doc false
  # Every Nx tensor anywhere in a term (maps, lists, tuples) becomes the
  # wire's struct, so a serving's items and options can hold Nx tensors.
  # Matching the struct name needs no Nx check: an Nx.Tensor means Nx is here.
  @spec deep_to_wire(term()) :: term()
  def deep_to_wire(%{__struct__: Nx.Tensor} = tensor), do: from_nx(tensor)
  def deep_to_wire(%{__struct__: _} = struct), do: struct

  def deep_to_wire(map) when is_map(map),
    do: Map.new(map, fn {k, v} -> {k, deep_to_wire(v)} end)

  def deep_to_wire(list) when is_list(list), do: Enum.map(list, &deep_to_wire/1)

  def deep_to_wire(tuple) when is_tuple(tuple),
    do: tuple |> Tuple.to_list() |> Enum.map(&deep_to_wire/1) |> List.to_tuple()

  def deep_to_wire(other), do: other

  @doc false
  @spec valid_type?(term()) :: boolean()
  def valid_type?(type), do: type in @types

  defp validate_type!(type) do
    unless type in @types do
      raise ArgumentError,
            "expected a tensor type, one of #{inspect(@types)}, got: #{inspect(type)}"
    end
  end

  defp ensure_nx! do
    unless nx_available?() do
      raise ArgumentError, "Nx is not available: add {:nx, ...} to your dependencies"
    end
  end

  defp list_shape([]), do: {0}

  defp list_shape([first | _] = list) when is_list(first) do
    List.to_tuple([length(list) | Tuple.to_list(list_shape(first))])
  end

  defp list_shape(list), do: {length(list)}

  defp nest([value], []), do: value
  defp nest(flat, [_]), do: flat

  defp nest(flat, [_ | inner]) do
    chunk = Enum.reduce(inner, 1, &(&1 * &2))

    if chunk == 0,
      do: [],
      else: flat |> Enum.chunk_every(chunk) |> Enum.map(&nest(&1, inner))
  end

  defp encode_number(:nan, {kind, bits}) when kind in [:f, :bf],
    do: <<0x7FC00000::unsigned-little-32>> |> narrow(kind, bits, 0x7FF8000000000000, 0x7E00)

  defp encode_number(:infinity, {kind, bits}) when kind in [:f, :bf],
    do: <<0x7F800000::unsigned-little-32>> |> narrow(kind, bits, 0x7FF0000000000000, 0x7C00)

  defp encode_number(:neg_infinity, {kind, bits}) when kind in [:f, :bf],
    do: <<0xFF800000::unsigned-little-32>> |> narrow(kind, bits, 0xFFF0000000000000, 0xFC00)

  defp encode_number(x, {:f, bits}) when bits in [32, 64],
    do: <<x * 1.0::float-little-size(bits)>>

  defp encode_number(x, {:f, 16}), do: <<x * 1.0::float-little-16>>
  defp encode_number(x, {:bf, 16}), do: binary_part(<<x * 1.0::float-little-32>>, 2, 2)
  defp encode_number(x, {:s, bits}), do: <<x::signed-little-size(bits)>>
  defp encode_number(x, {:u, bits}), do: <<x::unsigned-little-size(bits)>>

  # `f32` holds the 32-bit pattern; other widths take their own constant.
  defp narrow(f32, :f, 32, _f64, _f16), do: f32
  defp narrow(_f32, :f, 64, f64, _f16), do: <<f64::unsigned-little-64>>
  defp narrow(_f32, :f, 16, _f64, f16), do: <<f16::unsigned-little-16>>
  defp narrow(f32, :bf, 16, _f64, _f16), do: binary_part(f32, 2, 2)

  defp decode_number(chunk, {:f, bits}) do
    case chunk do
      <<x::float-little-size(bits)>> -> x
      _ -> non_finite(chunk, bits)
    end
  end

  defp decode_number(chunk, {:s, bits}) do
    <<x::signed-little-size(bits)>> = chunk
    x
  end

  defp decode_number(chunk, {:u, bits}) do
    <<x::unsigned-little-size(bits)>> = chunk
    x
  end

  # bf16 is the high half of an f32.
  defp decode_number(chunk, {:bf, 16}), do: decode_number(<<0, 0>> <> chunk, {:f, 32})

  # Erlang floats cannot hold NaN or infinities; Nx names them with these atoms.
  @mantissa_bits %{16 => 10, 32 => 23, 64 => 52}

  defp non_finite(chunk, bits) do
    <<int::unsigned-little-size(bits)>> = chunk
    mantissa = Bitwise.band(int, Bitwise.bsl(1, @mantissa_bits[bits]) - 1)
    negative? = Bitwise.bsr(int, bits - 1) == 1

    cond do
      mantissa != 0 -> :nan
      negative? -> :neg_infinity
      true -> :infinity
    end
  end
end

defimpl Inspect, for: PyBridge.Tensor do
  import Inspect.Algebra

  # Like Nx's: the type, the shape and the first values, never the raw bytes.
  def inspect(%PyBridge.Tensor{type: {kind, bits}, shape: shape} = tensor, opts) do
    dims = shape |> Tuple.to_list() |> Enum.map_join("", &"[#{&1}]")
    limit = if opts.limit == :infinity, do: PyBridge.Tensor.size(tensor), else: opts.limit
    shown = min(limit, PyBridge.Tensor.size(tensor))
    values = tensor |> PyBridge.Tensor.take_flat(shown) |> Enum.map_join(", ", &to_string/1)
    more = if shown < PyBridge.Tensor.size(tensor), do: ", ...", else: ""

    concat(["#PyBridge.Tensor<", "#{kind}#{bits}#{dims}", " [", values, more, "]>"])
  end
end
