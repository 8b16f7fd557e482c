defmodule PyBridge.GoldenVectorsTest do
  # The golden vectors are shared with the Python codec's tests
  # (tests/python/test_etf.py); protocols/golden/generate.exs writes them and
  # explains the name markers checked here.
  use ExUnit.Case, async: true

  @vectors_path Path.expand("../../../protocols/golden/vectors.tsv", __DIR__)
  @external_resource @vectors_path
  @otp_release String.to_integer(System.otp_release())

  @vectors (for line <- String.split(File.read!(@vectors_path), "\n", trim: true),
                not String.starts_with?(line, "#") do
              [name, hex, elixir_expr, _python_expr] = String.split(line, "\t")
              [base | flags] = String.split(name, "@")
              {base, flags, hex, elixir_expr}
            end)

  describe "vectors.tsv" do
    test "holds uniquely named vectors" do
      names = Enum.map(@vectors, &elem(&1, 0))
      assert length(names) >= 40
      assert names == Enum.uniq(names)
    end
  end

  describe "the VM and the golden vectors agree" do
    for {name, flags, hex, elixir_expr} <- @vectors do
      test name do
        check(unquote(flags), unquote(hex), unquote(elixir_expr))
      end
    end
  end

  defp check(flags, hex, elixir_expr) do
    {value, _binding} = Code.eval_string(elixir_expr)
    bytes = Base.decode16!(hex, case: :lower)
    decoded = :erlang.binary_to_term(bytes)

    if "per_run" in flags do
      # A pid, port or reference from another VM run: only its kind can match.
      assert kind(decoded) == kind(value)
    else
      assert decoded === value
    end

    cond do
      "decode_only" in flags or "per_run" in flags ->
        :ok

      "map_order" in flags and @otp_release >= 26 ->
        # OTP 26+ orders atom keys per VM run, so only the size is stable.
        assert byte_size(:erlang.term_to_binary(value, minor_version: 2)) == byte_size(bytes)

      true ->
        assert :erlang.term_to_binary(value, minor_version: 2) == bytes
    end
  end

  defp kind(term) when is_pid(term), do: :pid
  defp kind(term) when is_port(term), do: :port
  defp kind(term) when is_reference(term), do: :reference
  defp kind(term) when is_function(term), do: :fun
end
