defmodule PyBridge.Text.QuestionAnsweringTest do
  use ExUnit.Case, async: false

  import PyBridge.TestSupport

  @moduletag :model

  # The last context is far longer than the model's 128 positions; only it
  # is truncated, never the question.
  @inputs [
    %{question: "where is the café?", context: "the café is in zürich, near 東京 and paris."},
    %{question: "who lives in rome?", context: "mary lives in rome and john lives in london"},
    %{question: "what?", context: "naïve"},
    %{
      question: "where is paris?",
      context: String.duplicate("paris is the capital of france. ", 40)
    }
  ]

  setup_all do
    dir = tiny_model("bert_question_answering")
    {:ok, model_info} = PyBridge.load_model({:local, dir})
    {:ok, tokenizer} = PyBridge.load_tokenizer({:local, dir})

    # The best context span by the model's start and end logits, found by
    # trying every span in Python (tests/reference.py), byte offsets.
    expected =
      Task.async(fn ->
        reference([
          "question_answering",
          "--model",
          dir | Enum.flat_map(@inputs, &[&1.question, &1.context])
        ])
      end)

    name = __MODULE__.Serving
    serving = PyBridge.Text.question_answering(model_info, tokenizer)

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

  describe "question_answering/3" do
    test "the answer is the best span, as computed from transformers' logits", ctx do
      results = PyBridge.Serving.batched_run(ctx.name, @inputs)

      for {%{results: [answer]}, expected} <- Enum.zip(results, ctx.expected) do
        assert Map.keys(answer) == [:end, :score, :start, :text]
        assert Map.delete(answer, :score) == Map.delete(expected, :score)
        assert_in_delta answer.score, expected.score, 1.0e-5
      end
    end

    test "start and end are byte offsets that cut the answer out of the context", ctx do
      for {input, %{results: [answer]}} <-
            Enum.zip(@inputs, PyBridge.Serving.batched_run(ctx.name, @inputs)) do
        assert binary_part(input.context, answer.start, answer.end - answer.start) == answer.text
      end

      # In the first context "東京" comes before the answer's end, so byte
      # and character offsets differ.
      [%{results: [answer]} | _] = PyBridge.Serving.batched_run(ctx.name, [hd(@inputs)])
      assert String.length(hd(@inputs).context) < answer.end
    end

    test "a single input gives one map, a list a list; extra keys are ignored", ctx do
      input = Map.put(hd(@inputs), :id, 1)
      assert %{results: [single]} = PyBridge.Serving.batched_run(ctx.name, input)
      assert [%{results: [listed]}] = PyBridge.Serving.batched_run(ctx.name, [input])
      assert single.text == listed.text
    end

    test "a question that leaves no room for the context fails alone", ctx do
      no_room = %{question: String.duplicate("who ", 200), context: "mary"}

      error =
        assert_raise PyBridge.Error, fn -> PyBridge.Serving.batched_run(ctx.name, no_room) end

      assert error.type == :bad_input

      assert %{results: [%{text: "mary"}]} =
               PyBridge.Serving.batched_run(ctx.name, %{question: "who?", context: "mary"})
    end
  end

  describe "input validation, in the caller" do
    test "a map without :context raises, worded as Bumblebee words it", ctx do
      assert_raise ArgumentError,
                   ~s/invalid input, expected input map with :question and :context keys, got: %{question: "who?"}/,
                   fn -> PyBridge.Serving.batched_run(ctx.name, %{question: "who?"}) end
    end

    test "a text in a list names the batch", ctx do
      assert_raise ArgumentError,
                   ~s/invalid input in the batch, expected input map with :question and :context keys, got: "text"/,
                   fn -> PyBridge.Serving.batched_run(ctx.name, [hd(@inputs), "text"]) end
    end
  end

  describe "question_answering/3 options" do
    test "unknown options raise", ctx do
      assert_raise ArgumentError, ~r/unknown keys \[:top_k\]/, fn ->
        PyBridge.Text.question_answering(ctx.model_info, ctx.tokenizer, top_k: 2)
      end
    end

    test ":compile sets the batch size and the sequence lengths", ctx do
      serving =
        PyBridge.Text.question_answering(ctx.model_info, ctx.tokenizer,
          compile: [batch_size: 4, sequence_length: 64],
          defn_options: [],
          preallocate_params: false
        )

      assert serving.batch_size == 4
      assert serving.options == %{sequence_length: 64}
    end

    test "a model without a question answering head is refused" do
      dir = tiny_model("bert_masked_lm")
      {:ok, model_info} = PyBridge.load_model({:local, dir})
      {:ok, tokenizer} = PyBridge.load_tokenizer({:local, dir})

      assert_raise ArgumentError,
                   "expected a model with architecture :for_question_answering, got :for_masked_language_modeling",
                   fn -> PyBridge.Text.question_answering(model_info, tokenizer) end
    end
  end
end
