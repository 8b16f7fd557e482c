defmodule PyBridge.Text.ZeroShotClassificationTest do
  use ExUnit.Case, async: false

  import PyBridge.TestSupport

  @moduletag :model

  @labels ["sports", "cooking", "travel", "movies"]
  # transformers' pipeline refuses an empty text, so there is none here.
  @texts ["i love this movie", "café in zürich", "naïve 東京"]

  setup_all do
    dir = tiny_model("bert_nli")
    {:ok, model_info} = PyBridge.load_model({:local, dir})
    {:ok, tokenizer} = PyBridge.load_tokenizer({:local, dir})
    labels = Enum.flat_map(@labels, &["--label", &1])

    # transformers' zero-shot-classification pipeline with the same
    # hypotheses, written as its template, and top 2.
    expected =
      Task.async(fn ->
        reference(
          ["zero_shot", "--model", dir, "--template", "It is about {}.", "--top-k", "2"] ++
            labels ++ @texts
        )
      end)

    name = __MODULE__.Serving

    serving =
      PyBridge.Text.zero_shot_classification(model_info, tokenizer, @labels,
        hypothesis_template: &"It is about #{&1}.",
        top_k: 2
      )

    start_supervised!(
      {PyBridge.Serving, serving: serving, name: name, batch_size: 4, batch_timeout: 20}
    )

    %{
      name: name,
      model_info: model_info,
      tokenizer: tokenizer,
      expected: Task.await(expected, :infinity)
    }
  end

  describe "zero_shot_classification/4" do
    test "labels and scores are transformers' pipeline's, highest first, top_k of them", ctx do
      results = PyBridge.Serving.batched_run(ctx.name, @texts)

      for {%{predictions: predictions}, expected} <- Enum.zip(results, ctx.expected) do
        assert length(predictions) == 2
        assert_same_predictions(predictions, expected)
        scores = Enum.map(predictions, & &1.score)
        assert scores == Enum.sort(scores, :desc)
      end
    end

    test "the default template is Bumblebee's and top_k defaults to 5", ctx do
      serving = PyBridge.Text.zero_shot_classification(ctx.model_info, ctx.tokenizer, @labels)

      assert serving.options.hypotheses == [
               "This example is sports.",
               "This example is cooking.",
               "This example is travel.",
               "This example is movies."
             ]

      assert serving.options.top_k == 5
    end

    test "the template runs in the caller, once per label, when the serving is built", ctx do
      test = self()

      template = fn label ->
        send(test, {:template_called, label, self()})
        "This is #{label}."
      end

      serving =
        PyBridge.Text.zero_shot_classification(ctx.model_info, ctx.tokenizer, @labels,
          hypothesis_template: template
        )

      for label <- @labels, do: assert_received({:template_called, ^label, ^test})
      refute_received {:template_called, _, _}
      assert serving.options.hypotheses == Enum.map(@labels, &"This is #{&1}.")
      assert serving.options.labels == @labels
    end

    test "a single text gives one map, a list a list", ctx do
      assert %{predictions: [_ | _]} = PyBridge.Serving.batched_run(ctx.name, hd(@texts))
      assert [%{predictions: [_ | _]}] = PyBridge.Serving.batched_run(ctx.name, [hd(@texts)])
    end

    test "a text longer than the model's maximum is truncated, not refused", ctx do
      long = String.duplicate("i love this movie ", 100)
      assert %{predictions: [_, _]} = PyBridge.Serving.batched_run(ctx.name, long)
    end
  end

  describe "input validation, in the caller" do
    test "a non-string raises", ctx do
      assert_raise ArgumentError, "invalid input, expected a string, got: nil", fn ->
        PyBridge.Serving.batched_run(ctx.name, nil)
      end
    end
  end

  describe "zero_shot_classification/4 options" do
    test "a model without an entailment label is refused" do
      dir = tiny_model("bert_sequence_classification")
      {:ok, model_info} = PyBridge.load_model({:local, dir})
      {:ok, tokenizer} = PyBridge.load_tokenizer({:local, dir})

      assert_raise ArgumentError,
                   ~s/expected model specification to include "entailment" label in :id_to_label/,
                   fn ->
                     PyBridge.Text.zero_shot_classification(model_info, tokenizer, @labels)
                   end
    end

    test "the entailment label is found in any case", ctx do
      spec = %{ctx.model_info.spec | id_to_label: %{0 => "CONTRADICTION", 1 => "ENTAILMENT"}}
      model_info = %{ctx.model_info | spec: spec}

      assert %PyBridge.Serving{} =
               PyBridge.Text.zero_shot_classification(model_info, ctx.tokenizer, @labels)
    end

    test "labels must be a non-empty list of strings", ctx do
      assert_raise ArgumentError, ~r/expected labels to be a non-empty list of strings/, fn ->
        PyBridge.Text.zero_shot_classification(ctx.model_info, ctx.tokenizer, [])
      end

      assert_raise ArgumentError,
                   ~r/expected labels to be a list of strings, got: \[:sports\]/,
                   fn ->
                     PyBridge.Text.zero_shot_classification(ctx.model_info, ctx.tokenizer, [
                       :sports
                     ])
                   end
    end

    test "the template must be a one-argument function returning a string", ctx do
      assert_raise ArgumentError,
                   ~r/expected :hypothesis_template to be a function of one argument/,
                   fn ->
                     PyBridge.Text.zero_shot_classification(
                       ctx.model_info,
                       ctx.tokenizer,
                       @labels,
                       hypothesis_template: "This example is {}."
                     )
                   end

      assert_raise ArgumentError,
                   ~r/expected :hypothesis_template to return a string, got: :oops/,
                   fn ->
                     PyBridge.Text.zero_shot_classification(
                       ctx.model_info,
                       ctx.tokenizer,
                       @labels,
                       hypothesis_template: fn _ -> :oops end
                     )
                   end
    end

    test "unknown options and a bad top_k raise", ctx do
      assert_raise ArgumentError, ~r/unknown keys \[:multi_label\]/, fn ->
        PyBridge.Text.zero_shot_classification(ctx.model_info, ctx.tokenizer, @labels,
          multi_label: true
        )
      end

      assert_raise ArgumentError, "expected :top_k to be a positive integer, got: -1", fn ->
        PyBridge.Text.zero_shot_classification(ctx.model_info, ctx.tokenizer, @labels, top_k: -1)
      end
    end
  end

  defp assert_same_predictions(predictions, expected) do
    assert Enum.map(predictions, & &1.label) == Enum.map(expected, & &1.label)

    for {ours, theirs} <- Enum.zip(predictions, expected) do
      assert Map.keys(ours) == [:label, :score]
      assert_in_delta ours.score, theirs.score, 1.0e-5
    end
  end
end
