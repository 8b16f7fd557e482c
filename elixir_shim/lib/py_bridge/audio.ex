defmodule PyBridge.Audio do
  @moduledoc """
  Audio servings, mirroring `Bumblebee.Audio`.

  `speech_to_text_whisper/5` takes the `model_info`, featurizer, tokenizer
  and generation config loaded with `PyBridge.load_model/2`,
  `PyBridge.load_featurizer/2`, `PyBridge.load_tokenizer/2` and
  `PyBridge.load_generation_config/2`, validates its options as Bumblebee
  does (an unknown option raises `ArgumentError`) and returns a
  `PyBridge.Serving`:

      repo = {:hf, "openai/whisper-tiny"}
      {:ok, model_info} = PyBridge.load_model(repo)
      {:ok, featurizer} = PyBridge.load_featurizer(repo)
      {:ok, tokenizer} = PyBridge.load_tokenizer(repo)
      {:ok, generation_config} = PyBridge.load_generation_config(repo)

      serving =
        PyBridge.Audio.speech_to_text_whisper(model_info, featurizer, tokenizer, generation_config,
          chunk_num_seconds: 30,
          timestamps: :segments
        )

      PyBridge.Serving.run(serving, {:file, "/path/to/interview.flac"})
      #=> %{chunks: [%{text: " Good morning.", start_timestamp_seconds: 0.0, end_timestamp_seconds: 1.5}, ...]}
  """

  @typedoc """
  Audio: a 1-dimensional float tensor (`Nx.Tensor` or `PyBridge.Tensor`) of
  samples at the featurizer's `:sampling_rate`; an enumerable of such
  tensors, the pieces of one recording in order (needs `:chunk_num_seconds`);
  or `{:file, path}`, decoded in the worker.
  """
  @type audio :: PyBridge.Tensor.t() | struct() | Enumerable.t() | {:file, String.t()}

  @typedoc "Audio, or a map with the audio and the seed used when the generation strategy samples."
  @type speech_to_text_whisper_input ::
          audio() | %{:audio => audio(), optional(:seed) => integer() | nil}

  @typedoc """
  A piece of the transcript. The timestamps are `nil` unless the serving was
  built with `timestamps: :segments`.
  """
  @type speech_to_text_whisper_chunk :: %{
          text: String.t(),
          start_timestamp_seconds: float() | nil,
          end_timestamp_seconds: float() | nil
        }

  @type speech_to_text_whisper_output :: %{chunks: [speech_to_text_whisper_chunk()]}

  @doc """
  Builds a serving that transcribes (or translates) speech with a Whisper model.

  The serving takes one `t:speech_to_text_whisper_input/0` and returns
  `t:speech_to_text_whisper_output/0`. It always takes a **single** input: a
  list of tensors is the pieces of one recording, not a batch. To transcribe
  several recordings at once, call `PyBridge.Serving.batched_run/3` from
  several processes. Most transcripts begin with a space (`" Hello."`).

  Requires a Whisper model with the `:for_conditional_generation`
  architecture (`WhisperForConditionalGeneration`).

  ## Audio input

    * A tensor must already be at the featurizer's sampling rate
      (`featurizer.sampling_rate`, 16 000 Hz for Whisper), mono, with float
      samples in -1.0..1.0. It travels to the worker as raw bytes.
    * `{:file, path}` is decoded in the worker with `soundfile` (libsndfile):
      WAV, FLAC, OGG (Vorbis, Opus) and AIFF work everywhere, MP3 needs
      libsndfile 1.1 or newer. Other formats (AAC/M4A, WebM, video files)
      are not read; convert them first, e.g.
      `ffmpeg -i in.m4a -ac 1 -ar 16000 out.flac`. Files are mixed down to
      mono and resampled to the featurizer's rate. Unlike Bumblebee, no
      `ffmpeg` is needed. The path must be readable by the worker.
    * An enumerable (a list or a `Stream` of tensors) is gathered in the
      calling process into one tensor before anything is sent: it is not
      transcribed while it is still being produced.

  Without `:chunk_num_seconds` Whisper hears the first 30 seconds of a
  tensor, while a file is transcribed whole, in 30-second pieces with no
  overlap (words cut at a boundary may be lost), as Bumblebee reads files.
  Use `:chunk_num_seconds` for long audio.

  ## Options

    * `:chunk_num_seconds` - enables long-form transcription: the audio is
      cut into windows of this many seconds, each transcribed on its own,
      and the transcripts are merged where the windows overlap. Defaults to
      `nil` (no chunking).
    * `:context_num_seconds` - the overlap on each side of every cut,
      included in `:chunk_num_seconds`. It must be less than half of
      `:chunk_num_seconds`. Defaults to `chunk_num_seconds / 6`.
    * `:client_batch_size` - how many windows of one input are transcribed,
      and merged, together. Defaults to `compile[:batch_size]`, else `1`.
    * `:language` - the language of the speech as an ISO 639-1 code
      (`"en"`, `"fr"`), when known. Defaults to `nil`: the model detects it.
    * `:task` - `:transcribe` (text in the language spoken), `:translate`
      (English text), or `nil` for English-only (`*.en`) models. Defaults to
      `:transcribe`.
    * `:timestamps` - `:segments` makes each segment the model marks with
      timestamps an output chunk, with start and end in seconds. Defaults
      to `nil`.
    * `:compile` - `[batch_size: n]`: the serving's batch size. Defaults to `nil`.
    * `:stream` - when `true`, `PyBridge.Serving.run/2` and `batched_run/3`
      return a `Stream` of chunk maps, each sent as soon as it is final. The
      stream must be consumed in the calling process. Defaults to `false`.
    * `:defn_options`, `:preallocate_params` - accepted for Bumblebee
      compatibility; they mean nothing here.

  The generation config sets the length: its `:max_new_tokens` counts the
  language, task and no-timestamps tokens Whisper starts with, as in
  Bumblebee. Its `:extra_config`, when it holds Bumblebee's
  `:language_to_token_id` and `:task_to_token_id` maps, is used to check
  `:language` and `:task` here; otherwise the worker checks them against the
  model's `generation_config.json` when the serving starts.

  Decoding runs `transformers`' Whisper `generate`, one pass per window.
  Without `:language` the language token is picked among Whisper's language
  tokens (Bumblebee lets the model pick any token there), and with
  `:timestamps` the first timestamp follows Whisper's rule (at most
  `max_initial_timestamp_index`) where Bumblebee forces `<|0.00|>`; with
  real checkpoints the two agree.

  ## Examples

      serving =
        PyBridge.Audio.speech_to_text_whisper(model_info, featurizer, tokenizer, generation_config,
          language: "en",
          stream: true,
          chunk_num_seconds: 30
        )

      serving
      |> PyBridge.Serving.run({:file, "/path/to/podcast.wav"})
      |> Enum.each(&IO.write(&1.text))
  """
  @spec speech_to_text_whisper(
          PyBridge.model_info(),
          PyBridge.Featurizer.t(),
          PyBridge.Tokenizer.t(),
          PyBridge.Text.GenerationConfig.t(),
          keyword()
        ) :: PyBridge.Serving.t()
  defdelegate speech_to_text_whisper(
                model_info,
                featurizer,
                tokenizer,
                generation_config,
                opts \\ []
              ),
              to: PyBridge.Audio.SpeechToTextWhisper,
              as: :serving
end
