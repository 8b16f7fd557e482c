defmodule PyBridge.Serving.BadInputsTest do
  # Runs every `elixir` row of protocols/bad_inputs.md: each bad input gets
  # the outcome the table gives it, and the same workers go on serving.
  use ExUnit.Case, async: true

  import PyBridge.TestSupport
  import PyBridge.FaultHelpers

  alias PyBridge.{Error, Serving, Tensor}

  @moduletag :model

  @table Path.join(PyBridge.TestSupport.repo_root(), "protocols/bad_inputs.md")
  @external_resource @table

  rows =
    for line <- File.read!(@table) |> String.split("\n"),
        [id, side, input, outcome, contains] <- [
          line
          |> String.trim()
          |> String.trim("|")
          |> String.split("|")
          |> Enum.map(&String.trim/1)
        ],
        id =~ ~r/^[a-z0-9-]+$/,
        do: %{id: id, side: side, input: input, outcome: outcome, contains: contains}

  @rows Enum.filter(rows, &(&1.side == "elixir"))

  @cases ~w(wrong-type atom-input charlist invalid-utf8 bad-pair nested-list empty-list
            empty-string huge-text oversized-input unknown-run-option bad-timeout bad-name
            unknown-serving unknown-constructor-option bad-constructor-option
            unknown-start-option bad-batch-size bad-start-limit tensor-size-mismatch tensor-unknown-type
            tensor-nan worker-unsafe-frame worker-compressed-bomb worker-unknown-message)

  setup_all do
    dir = tiny_model("bert_sequence_classification")
    {:ok, model_info} = PyBridge.load_model({:local, dir})
    {:ok, tokenizer} = PyBridge.load_tokenizer({:local, dir})
    serving = PyBridge.Text.text_classification(model_info, tokenizer)

    text = unique_name(__MODULE__)
    start_supervised!({Serving, serving: serving, name: text}, id: text)
    echo = unique_name(__MODULE__)

    start_supervised!(
      {Serving, serving: scripted_serving(), name: echo, max_frame_bytes: 65_536},
      id: echo
    )

    %{
      model_info: model_info,
      tokenizer: tokenizer,
      serving: serving,
      text: text,
      echo: echo,
      os_pids: os_pids(text) ++ os_pids(echo)
    }
  end

  test "every elixir row of the table has a case, and every case a row" do
    assert Enum.sort(Enum.map(@rows, & &1.id)) == Enum.sort(@cases)
  end

  for row <- @rows do
    @row row
    test "#{row.id}: #{row.input} gets #{row.outcome}", ctx do
      observed = observe(fn -> run_case(@row.id, ctx) end)
      check(@row, observed)

      # Nothing broke: the same OS processes answer the next good request.
      assert %{predictions: [_ | _]} = Serving.batched_run(ctx.text, "good")
      assert Serving.batched_run(ctx.echo, "good") == "good"
      assert os_pids(ctx.text) ++ os_pids(ctx.echo) == ctx.os_pids
    end
  end

  defp observe(fun) do
    {:answered, fun.()}
  rescue
    error -> {:raised, error}
  catch
    :exit, reason -> {:exited, reason}
  end

  defp check(%{outcome: "ArgumentError"} = row, observed) do
    assert {:raised, %ArgumentError{} = error} = observed
    assert Exception.message(error) =~ row.contains
  end

  defp check(%{outcome: "raise :" <> type} = row, observed) do
    assert {:raised, %Error{} = error} = observed
    assert Atom.to_string(error.type) == type
    assert error.message =~ row.contains
  end

  defp check(%{outcome: "exit :" <> type} = row, observed) do
    assert {:exited, {%Error{} = error, {Serving, :batched_run, [_name, _input]}}} = observed
    assert Atom.to_string(error.type) == type
    assert error.message =~ row.contains
  end

  defp check(%{outcome: "exit noproc"}, observed) do
    assert {:exited, {:noproc, {Serving, _fun, [_name, _input]}}} = observed
  end

  defp check(%{outcome: "answered"}, observed) do
    assert {:answered, _} = observed
  end

  defp run_case("wrong-type", ctx), do: Serving.batched_run(ctx.text, 123)
  defp run_case("atom-input", ctx), do: Serving.batched_run(ctx.text, :hello)
  defp run_case("charlist", ctx), do: Serving.batched_run(ctx.text, ~c"hello")
  defp run_case("invalid-utf8", ctx), do: Serving.batched_run(ctx.text, <<0xFF, 0xFE>>)
  defp run_case("bad-pair", ctx), do: Serving.batched_run(ctx.text, {"a", 1})
  defp run_case("empty-list", ctx), do: Serving.batched_run(ctx.text, [])

  defp run_case("nested-list", ctx) do
    nested = Enum.reduce(1..10_000, "deep", fn _, acc -> [acc] end)
    Serving.batched_run(ctx.text, [nested])
  end

  defp run_case("empty-string", ctx) do
    assert %{predictions: [_ | _]} = Serving.batched_run(ctx.text, "")
  end

  defp run_case("huge-text", ctx) do
    text = "the cat sat on the mat " |> String.duplicate(9_000) |> binary_part(0, 200_000)
    # Truncated to the model's length, as Bumblebee truncates.
    assert Serving.batched_run(ctx.text, text) ==
             Serving.batched_run(ctx.text, truncated_like(text, ctx))
  end

  defp run_case("oversized-input", ctx),
    do: Serving.batched_run(ctx.echo, String.duplicate("x", 100_000))

  defp run_case("unknown-run-option", ctx),
    do: Serving.batched_run(ctx.text, "x", colour: :red)

  defp run_case("bad-timeout", ctx), do: Serving.batched_run(ctx.text, "x", timeout: -1)
  defp run_case("bad-name", _ctx), do: Serving.batched_run("name", "x")

  defp run_case("unknown-serving", _ctx),
    do: Serving.batched_run(unique_name(__MODULE__.Nobody), "x")

  defp run_case("unknown-constructor-option", ctx),
    do: PyBridge.Text.text_classification(ctx.model_info, ctx.tokenizer, colour: :red)

  defp run_case("bad-constructor-option", ctx),
    do: PyBridge.Text.text_classification(ctx.model_info, ctx.tokenizer, top_k: 0)

  defp run_case("unknown-start-option", ctx),
    do: Serving.start_link(serving: ctx.serving, name: unique_name(__MODULE__), colour: :red)

  defp run_case("bad-batch-size", ctx),
    do: Serving.start_link(serving: ctx.serving, name: unique_name(__MODULE__), batch_size: 0)

  defp run_case("bad-start-limit", ctx),
    do: Serving.start_link(serving: ctx.serving, name: unique_name(__MODULE__), max_queue: 0)

  defp run_case("tensor-size-mismatch", _ctx), do: Tensor.new(<<1, 2, 3>>, {:f, 32}, {1})
  defp run_case("tensor-unknown-type", _ctx), do: Tensor.from_list([1], {:f, 8})

  defp run_case("tensor-nan", ctx) do
    tensor = Tensor.from_list([:nan, :infinity, :neg_infinity, 1.5], {:f, 32})
    back = Serving.batched_run(ctx.echo, tensor)
    back = if is_struct(back, Tensor), do: back, else: Tensor.from_nx(back)
    # Bit for bit: NaN is data, not an error, on either side of the wire.
    assert Tensor.to_binary(back) == Tensor.to_binary(tensor)
    assert Tensor.to_list(back) == [:nan, :infinity, :neg_infinity, 1.5]
  end

  defp run_case("worker-unsafe-frame", ctx), do: Serving.batched_run(ctx.echo, {:garbage, "x"})

  defp run_case("worker-compressed-bomb", ctx),
    do: Serving.batched_run(ctx.echo, {:bomb, 1_000_000, "x"})

  defp run_case("worker-unknown-message", ctx) do
    assert Serving.batched_run(ctx.echo, {:odd, "kept"}) == "kept"
  end

  # The longest prefix of `text` that fills the model's 128 positions: the
  # same text cut by whitespace words, which this vocabulary keeps whole.
  defp truncated_like(text, ctx) do
    positions = ctx.model_info.spec.max_positions - 2
    text |> String.split() |> Enum.take(positions) |> Enum.join(" ")
  end
end
