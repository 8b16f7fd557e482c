defmodule PyBridge.Audio.WhisperStreamTest do
  use ExUnit.Case, async: false

  import PyBridge.TestSupport
  import PyBridge.MediaSupport

  @moduletag :model

  setup_all do
    dir = tiny_model("whisper_speech_to_text")
    repo = {:local, dir}

    %{
      model_info: model_info,
      featurizer: featurizer,
      tokenizer: tokenizer,
      generation_config: generation_config
    } = load_generating(repo, max_new_tokens: 8)

    tmp = scratch_dir("whisper")

    audio = tone(3.5, 500)

    # transformers' greedy Whisper generate on each 1 s window alone.
    expected =
      Task.async(fn ->
        reference([
          "whisper",
          "--model",
          dir,
          "--max-new-tokens",
          "8",
          "--language",
          "de",
          "--window",
          "1",
          raw_audio_arg(audio, tmp, "tone")
        ])
      end)

    name = __MODULE__.Serving

    serving =
      PyBridge.Audio.speech_to_text_whisper(model_info, featurizer, tokenizer, generation_config,
        chunk_num_seconds: 1,
        context_num_seconds: 0,
        language: "de",
        stream: true
      )

    start_supervised!({PyBridge.Serving, serving: serving, name: name, batch_timeout: 20})
    [texts] = Task.await(expected, :infinity)

    expected =
      Enum.map(texts, &%{text: &1, start_timestamp_seconds: nil, end_timestamp_seconds: nil})

    %{name: name, audio: audio, expected: expected}
  end

  describe "speech_to_text_whisper/5 with stream: true" do
    test "streams every chunk, in order", ctx do
      stream = PyBridge.Serving.batched_run(ctx.name, ctx.audio)
      refute is_map(stream)
      # 3.5 s in 1 s windows: several chunks to put in order.
      assert length(ctx.expected) >= 3
      assert Enum.to_list(stream) == ctx.expected
    end

    test "chunks arrive one at a time, and a stream left early stops cleanly", ctx do
      [first] = ctx.name |> PyBridge.Serving.batched_run(ctx.audio) |> Enum.take(1)
      assert first == hd(ctx.expected)
      # The serving carries on with the next caller.
      assert ctx.name |> PyBridge.Serving.batched_run(ctx.audio) |> Enum.to_list() == ctx.expected
    end

    test "the stream belongs to its caller", ctx do
      stream = PyBridge.Serving.batched_run(ctx.name, ctx.audio)

      assert {:error, {%ArgumentError{message: message}, _}} =
               Task.async(fn -> catch_error_in(fn -> Enum.to_list(stream) end) end)
               |> Task.await(:infinity)

      assert message =~ "must be consumed in the process that called it"
      assert Enum.to_list(stream) == ctx.expected
    end
  end

  defp catch_error_in(fun) do
    {:ok, fun.()}
  rescue
    error -> {:error, {error, __STACKTRACE__}}
  end
end
