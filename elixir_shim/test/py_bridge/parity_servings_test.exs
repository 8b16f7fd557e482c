defmodule PyBridge.ParityServingsTest do
  # PyBridge.Parity on real servings: the tiny 3-label classifier in float32
  # and bfloat16, and the same architecture with other random weights.
  use ExUnit.Case, async: false

  import ExUnit.CaptureIO
  import PyBridge.TestSupport

  alias PyBridge.Parity
  alias PyBridge.Parity.{Difference, Report}

  @moduletag :model

  # Texts on which the f32 model has no near-tie between labels, so bf16
  # keeps the order and only the scores move.
  @texts ["i love this movie", "naïve café in zürich", "the weather is terrible today"]

  setup_all do
    dir = tiny_model("bert_sequence_classification_3labels")
    other = tiny_model("bert_sequence_classification_3labels_seed1")
    {:ok, tokenizer} = PyBridge.load_tokenizer({:local, dir})

    serving = fn dir, type ->
      {:ok, model_info} = PyBridge.load_model({:local, dir}, type: type)
      PyBridge.Text.text_classification(model_info, tokenizer)
    end

    # The bfloat16 serving runs under a name, which Parity accepts as well;
    # the others run inline. Each worker loads a model once for the module.
    {:ok, _supervisor} =
      Supervisor.start_link(
        [{PyBridge.Serving, serving: serving.(dir, :bf16), name: __MODULE__.Bf16}],
        strategy: :one_for_one
      )

    %{
      dir: dir,
      other: other,
      f32: serving.(dir, :f32),
      bf16: __MODULE__.Bf16,
      seed1: serving.(other, :f32)
    }
  end

  test "float32 and bfloat16 differ in the scores, within or beyond the tolerance", ctx do
    left = PyBridge.Serving.run(ctx.f32, @texts)
    right = PyBridge.Serving.batched_run(ctx.bf16, @texts)

    # The same distances, computed here from the raw outputs, label by label.
    distances =
      for {l, r} <- Enum.zip(left, right),
          %{label: label, score: score} <- l.predictions do
        abs(score - Enum.find(r.predictions, &(&1.label == label)).score)
      end

    largest = Enum.max(distances)
    assert largest > 1.0e-4, "bfloat16 weights should move the scores"

    within = Parity.compare(ctx.f32, ctx.bf16, @texts, atol: 2 * largest, rtol: 0.0)
    assert within.equal?
    assert within.max_abs_diff == largest
    assert within.numbers_compared == length(distances)

    beyond = Parity.compare(ctx.f32, ctx.bf16, @texts, atol: 1.0e-6, rtol: 0.0)
    refute beyond.equal?
    assert beyond.max_abs_diff == largest
    assert length(beyond.differences) == Enum.count(distances, &(&1 > 1.0e-6))
    assert Enum.all?(beyond.differences, &match?(%Difference{kind: :number, field: :score}, &1))
  end

  test "a model with other weights is different, and the first differing field is named", ctx do
    report = Parity.compare(ctx.f32, ctx.seed1, @texts, atol: 1.0e-3)
    refute report.equal?

    # The first difference, found from the raw outputs: text by text, a
    # different ranking first, else the first score beyond the tolerance.
    left = PyBridge.Serving.run(ctx.f32, @texts)
    right = PyBridge.Serving.run(ctx.seed1, @texts)

    expected =
      left
      |> Enum.zip(right)
      |> Enum.with_index()
      |> Enum.find_value(fn {{l, r}, index} ->
        if Enum.map(l.predictions, & &1.label) != Enum.map(r.predictions, & &1.label) do
          {:order, [index, :predictions], :predictions}
        else
          Enum.zip(l.predictions, r.predictions)
          |> Enum.find_index(fn {a, b} ->
            abs(a.score - b.score) > 1.0e-3 + 1.0e-4 * abs(b.score)
          end)
          |> then(&(&1 && {:number, [index, :predictions, &1, :score], :score}))
        end
      end)

    assert {kind, path, field} = expected

    assert %Difference{kind: ^kind, path: ^path, field: ^field} = Report.first_difference(report)

    assert Report.format(report) =~ "first difference: #{inspect(field)} at #{inspect(path)}"
  end

  test "assert_parity/4 raises ExUnit.AssertionError with the report", ctx do
    error =
      assert_raise ExUnit.AssertionError, fn ->
        Parity.assert_parity(ctx.f32, ctx.seed1, @texts)
      end

    assert error.message =~ "outputs differ"
    assert error.message =~ "first difference: :predictions at ["

    assert %Report{equal?: true} = Parity.assert_parity(ctx.f32, ctx.f32, @texts)
  end

  test "mix py_bridge.parity compares two directories and fails when they differ", ctx do
    output =
      capture_io(fn ->
        assert %Report{equal?: true} =
                 Mix.Tasks.PyBridge.Parity.run(
                   [
                     "text_classification",
                     ctx.dir,
                     ctx.dir,
                     "--type-b",
                     "f32",
                     "--atol",
                     "0"
                   ] ++
                     Enum.flat_map(@texts, &["--input", &1])
                 )
      end)

    assert output =~ "outputs are equal within atol 0.0"

    inputs =
      Path.join(System.tmp_dir!(), "parity_inputs_#{System.unique_integer([:positive])}.txt")

    File.write!(inputs, Enum.join(@texts, "\n"))

    capture_io(fn ->
      assert_raise Mix.Error, ~r/answer differently/, fn ->
        Mix.Tasks.PyBridge.Parity.run([
          "text_classification",
          ctx.dir,
          ctx.other,
          "--inputs",
          inputs
        ])
      end
    end)

    File.rm!(inputs)
  end
end
