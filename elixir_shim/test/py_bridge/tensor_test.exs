defmodule PyBridge.TensorTest do
  use ExUnit.Case, async: true

  alias PyBridge.Tensor

  describe "from_list/2 and to_list/1" do
    test "round-trip nested lists through little-endian bytes" do
      tensor = Tensor.from_list([[1.5, -2.0], [3.25, 4.0]], {:f, 32})
      assert Tensor.shape(tensor) == {2, 2}
      # Worked example: 1.5 as an IEEE-754 f32 is 0x3FC00000, stored little-endian.
      assert binary_part(Tensor.to_binary(tensor), 0, 4) == <<0x00, 0x00, 0xC0, 0x3F>>
      assert Tensor.to_list(tensor) == [[1.5, -2.0], [3.25, 4.0]]
    end

    test "carry NaN and infinities as Nx's atoms" do
      for type <- [{:f, 16}, {:f, 32}, {:f, 64}, {:bf, 16}] do
        tensor = Tensor.from_list([:nan, :infinity, :neg_infinity, 1.0], type)
        assert Tensor.to_list(tensor) == [:nan, :infinity, :neg_infinity, 1.0]
      end
    end

    test "refuse data of the wrong size" do
      assert_raise ArgumentError, ~r/needs 8 bytes, got: 4/, fn ->
        Tensor.new(<<0::32>>, {:f, 32}, {2})
      end
    end
  end

  describe "Inspect" do
    test "shows the type, the shape and the first values, not the bytes" do
      assert inspect(Tensor.from_list([[1.5, 2.0], [3.0, 4.0]], {:f, 32})) ==
               "#PyBridge.Tensor<f32[2][2] [1.5, 2.0, 3.0, 4.0]>"

      assert inspect(Tensor.from_list(Enum.to_list(1..100), {:s, 64}), limit: 3) ==
               "#PyBridge.Tensor<s64[100] [1, 2, 3, ...]>"
    end
  end
end
