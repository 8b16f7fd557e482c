defmodule PyBridge.Serving.ErrorTypesTest do
  # protocols/errors.md is the one list of error types; PyBridge.Error must
  # have exactly those, in that order, with the same retryable flags.
  # (tests/python/test_server.py checks the Python classes against it.)
  use ExUnit.Case, async: true

  alias PyBridge.Error

  @table Path.join(PyBridge.TestSupport.repo_root(), "protocols/errors.md")

  defp rows do
    for line <- @table |> File.read!() |> String.split("\n"),
        cells = line |> String.trim() |> String.trim("|") |> String.split("|"),
        length(cells) == 4,
        [type, retryable, _class, _when] =
          Enum.map(cells, &(&1 |> String.trim() |> String.trim("`"))),
        type =~ ~r/^[a-z_]+$/ and type != "type",
        do: {type, retryable}
  end

  test "every type in the table is a PyBridge.Error type, and every type is in the table" do
    table = Enum.map(rows(), fn {type, _} -> type end)
    assert length(table) >= 14
    assert table == Enum.map(Error.types(), &Atom.to_string/1)
  end

  test "each type is retryable exactly when the table says so" do
    for {type, retryable} <- rows() do
      error = Error.new(Enum.find(Error.types(), &(Atom.to_string(&1) == type)), "x")
      assert error.retryable == (retryable == "true"), type
      # A wire error that omits the flag gets the type's own.
      assert Error.from_wire(%{type: error.type, message: "x"}).retryable == error.retryable
    end
  end
end
