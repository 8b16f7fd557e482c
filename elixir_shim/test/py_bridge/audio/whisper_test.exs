defmodule PyBridge.Audio.WhisperTest do
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
    } = load_generating(repo, max_new_tokens: 10)

    tmp = scratch_dir("whisper")

    audio = tone(2.5, 300)
    wav = write_wav!(audio, Path.join(tmp, "tone.wav"))

    # transformers' greedy Whisper generate on 1 s windows (0-1, 1-2, 2-2.5 s),
    # each alone: with no context every window is its own chunk.
    expected =
      Task.async(fn ->
        reference([
          "whisper",
          "--model",
          dir,
          "--max-new-tokens",
          "10",
          "--language",
          "en",
          "--window",
          "1",
          raw_audio_arg(audio, tmp, "tone"),
          wav
        ])
      end)

    name = __MODULE__.Serving

    serving =
      PyBridge.Audio.speech_to_text_whisper(model_info, featurizer, tokenizer, generation_config,
        chunk_num_seconds: 1,
        context_num_seconds: 0,
        language: "en"
      )

    start_supervised!({PyBridge.Serving, serving: serving, name: name, batch_timeout: 20})
    [from_tensor, from_wav] = Task.await(expected, :infinity)

    %{
      name: name,
      model_info: model_info,
      featurizer: featurizer,
      tokenizer: tokenizer,
      generation_config: generation_config,
      audio: audio,
      wav: wav,
      expected: chunks(from_tensor),
      expected_wav: chunks(from_wav)
    }
  end

  defp chunks(texts),
    do: %{
      chunks:
        Enum.map(texts, &%{text: &1, start_timestamp_seconds: nil, end_timestamp_seconds: nil})
    }

  describe "speech_to_text_whisper/5" do
    test "the transcript of a tensor is transformers', window by window", ctx do
      assert PyBridge.Serving.batched_run(ctx.name, ctx.audio) == ctx.expected
      assert length(ctx.expected.chunks) == 3
    end

    test "a WAV file is decoded in the worker", ctx do
      assert PyBridge.Serving.batched_run(ctx.name, {:file, ctx.wav}) == ctx.expected_wav
    end

    test "an enumerable of pieces is one recording, as is a list", ctx do
      pieces = pieces(ctx.audio, 7_000)
      assert length(pieces) > 3
      assert PyBridge.Serving.batched_run(ctx.name, Stream.map(pieces, & &1)) == ctx.expected
      assert PyBridge.Serving.batched_run(ctx.name, pieces) == ctx.expected
    end

    test "a map with :audio and :seed", ctx do
      assert PyBridge.Serving.batched_run(ctx.name, %{audio: ctx.audio, seed: 42}) == ctx.expected
    end

    test "featurizer settings come from the repository", ctx do
      assert ctx.featurizer.type == "WhisperFeatureExtractor"
      assert ctx.featurizer.sampling_rate == 16_000
      assert ctx.featurizer.config["chunk_length"] == 30
    end
  end

  describe "input validation, in the caller" do
    test "tensors that are not audio", ctx do
      assert_raise ArgumentError,
                   "invalid input, expected audio to be a 1-dimensional tensor, got a tensor of shape {2, 2}",
                   fn ->
                     tensor = PyBridge.Tensor.new(<<0::32*4>>, {:f, 32}, {2, 2})
                     PyBridge.Serving.batched_run(ctx.name, tensor)
                   end

      assert_raise ArgumentError,
                   "invalid input, expected audio samples of a float type, got: {:s, 16}",
                   fn ->
                     PyBridge.Serving.batched_run(
                       ctx.name,
                       PyBridge.Tensor.new(<<0::16*4>>, {:s, 16}, {4})
                     )
                   end
    end

    test "files, maps and other terms", ctx do
      assert_raise ArgumentError, "invalid input, no file found at /nonexistent/talk.wav", fn ->
        PyBridge.Serving.batched_run(ctx.name, {:file, "/nonexistent/talk.wav"})
      end

      assert_raise ArgumentError,
                   ~r/^invalid input, expected the input map to have :audio key/,
                   fn ->
                     PyBridge.Serving.batched_run(ctx.name, %{sound: ctx.audio})
                   end

      assert_raise ArgumentError,
                   ~r/^invalid input, expected audio to be a 1-dimensional tensor, an enumerable/,
                   fn ->
                     PyBridge.Serving.batched_run(ctx.name, 42)
                   end

      assert_raise ArgumentError,
                   ~r/expected each enumerable item to be a 1-dimensional tensor, got: "x"/,
                   fn ->
                     PyBridge.Serving.batched_run(ctx.name, [ctx.audio, "x"])
                   end
    end
  end

  describe "options" do
    test "an enumerable needs :chunk_num_seconds", ctx do
      serving =
        PyBridge.Audio.speech_to_text_whisper(
          ctx.model_info,
          ctx.featurizer,
          ctx.tokenizer,
          ctx.generation_config
        )

      assert_raise ArgumentError,
                   ~r/enumerable input is only supported when chunking is enabled/,
                   fn ->
                     serving.client_preprocessing.([ctx.audio])
                   end
    end

    test "the context must be less than half a window", ctx do
      assert_raise ArgumentError,
                   ~r/:chunk_num_seconds must be more than double the length of :context_num_seconds/,
                   fn ->
                     whisper(ctx, chunk_num_seconds: 10, context_num_seconds: 5)
                   end
    end

    test "unknown options and values raise", ctx do
      assert_raise ArgumentError, ~r/unknown keys \[:return_timestamps\]/, fn ->
        whisper(ctx, return_timestamps: true)
      end

      assert_raise ArgumentError, ~r/expected :timestamps to be one of nil, :segments/, fn ->
        whisper(ctx, timestamps: :words)
      end

      assert_raise ArgumentError,
                   ~r/expected :task to be one of :transcribe, :translate, nil/,
                   fn ->
                     whisper(ctx, task: :summarize)
                   end
    end

    test "the loaded generation config carries Whisper's language and task tokens", ctx do
      extra = ctx.generation_config.extra_config
      assert extra.task_to_token_id |> Map.keys() |> Enum.sort() == [:transcribe, :translate]
      assert Map.has_key?(extra.language_to_token_id, "en")
      assert is_integer(extra.no_timestamps_token_id)

      assert_raise ArgumentError, ~r/invalid language "xx", expected one of: /, fn ->
        whisper(ctx, language: "xx")
      end
    end

    test "language and task are checked against the config's token maps", ctx do
      config =
        PyBridge.configure(ctx.generation_config,
          extra_config: %{
            language_to_token_id: %{"en" => 402, "de" => 403},
            task_to_token_id: %{transcribe: 503},
            no_timestamps_token_id: 507
          }
        )

      assert_raise ArgumentError, ~s(invalid language "xx", expected one of: "de", "en"), fn ->
        whisper(%{ctx | generation_config: config}, language: "xx")
      end

      assert_raise ArgumentError, "invalid task :translate, expected one of: :transcribe", fn ->
        whisper(%{ctx | generation_config: config}, task: :translate)
      end

      monolingual =
        PyBridge.configure(config, extra_config: %{config.extra_config | task_to_token_id: %{}})

      assert_raise ArgumentError, ~r/does not have any tasks defined.*set :task to nil/, fn ->
        whisper(%{ctx | generation_config: monolingual}, [])
      end

      assert %PyBridge.Serving{} = whisper(%{ctx | generation_config: monolingual}, task: nil)
    end

    test "the model must be Whisper" do
      {:ok, bert} = PyBridge.load_model({:local, tiny_model("bert_base")})
      dir = tiny_model("whisper_speech_to_text")
      {:ok, featurizer} = PyBridge.load_featurizer({:local, dir})
      {:ok, tokenizer} = PyBridge.load_tokenizer({:local, dir})

      assert_raise ArgumentError, ~r/expected a Whisper model/, fn ->
        PyBridge.Audio.speech_to_text_whisper(
          bert,
          featurizer,
          tokenizer,
          %PyBridge.Text.GenerationConfig{}
        )
      end
    end
  end

  defp whisper(ctx, opts) do
    PyBridge.Audio.speech_to_text_whisper(
      ctx.model_info,
      ctx.featurizer,
      ctx.tokenizer,
      ctx.generation_config,
      opts
    )
  end
end
