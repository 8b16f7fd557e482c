defmodule PyBridge.SharedTest do
  use ExUnit.Case, async: true

  alias PyBridge.Shared

  describe "batch!/2" do
    test "names a charlist, also one with non-ASCII characters" do
      for charlist <- [~c"hello", ~c"héllo 東京"] do
        message =
          "invalid input, expected a string (in double quotes), got a charlist: ~c#{inspect(List.to_string(charlist))}"

        assert_raise ArgumentError, message, fn ->
          Shared.batch!(charlist, &Shared.validate_text/1)
        end
      end
    end

    test "a list of strings is a batch, anything else one item" do
      assert Shared.batch!(["a", "b"], &Shared.validate_text/1) == {["a", "b"], true}
      assert Shared.batch!("a", &Shared.validate_text/1) == {["a"], false}
    end
  end
end
