defmodule PyBridge.Audio.SpeechToTextWhisper do
  @moduledoc false
  # Whisper speech to text: options and input checked in the caller as
  # Bumblebee checks them; windowing, generation and Bumblebee's chunk merging
  # in the worker (py_bridge/tasks/speech_to_text_whisper.py). An enumerable
  # input is gathered here into one tensor, so the worker sees one audio per
  # request.

  alias PyBridge.{Featurizer, Shared, Tensor}
  alias PyBridge.Text.{Generation, GenerationConfig}

  @extra_keys [:language_to_token_id, :task_to_token_id, :no_timestamps_token_id]

  def serving(
        model_info,
        %Featurizer{} = featurizer,
        %PyBridge.Tokenizer{},
        %GenerationConfig{} = generation_config,
        opts
      ) do
    opts =
      Shared.validate_options!(opts, [
        :chunk_num_seconds,
        :context_num_seconds,
        :client_batch_size,
        :language,
        :compile,
        :timestamps,
        defn_options: [],
        preallocate_params: false,
        task: :transcribe,
        stream: false
      ])

    require_whisper!(model_info)
    Shared.require_architecture!(model_info, [:for_conditional_generation])
    compile = Shared.compile!(opts[:compile], [:batch_size])
    chunk = seconds!(opts[:chunk_num_seconds], :chunk_num_seconds, 0)

    context =
      seconds!(opts[:context_num_seconds], :context_num_seconds, -1) || (chunk && chunk / 6)

    check_windows!(chunk, context, featurizer.sampling_rate || 16_000)
    client_batch_size = opts[:client_batch_size] || compile[:batch_size] || 1
    Shared.positive_integer!(client_batch_size, :client_batch_size)
    Shared.one_of!(opts[:task], [:transcribe, :translate, nil], :task)
    Shared.one_of!(opts[:timestamps], [nil, :segments], :timestamps)
    Shared.one_of!(opts[:stream], [true, false], :stream)

    unless opts[:language] == nil or is_binary(opts[:language]) do
      raise ArgumentError,
            "expected :language to be an ISO language code such as \"en\", got: #{inspect(opts[:language])}"
    end

    extra = extra_config(generation_config.extra_config)
    check_tokens!(extra, opts[:language], opts[:task])

    if generation_config.max_new_tokens == nil and generation_config.max_length == nil do
      raise ArgumentError,
            "expected either :max_new_tokens or :max_length option, but neither was given"
    end

    options =
      Map.merge(Featurizer.worker_options(featurizer), %{
        generation_config: generation_config |> Map.from_struct() |> Map.delete(:extra_config),
        extra_config: extra,
        chunk_num_seconds: chunk,
        context_num_seconds: context,
        client_batch_size: client_batch_size,
        batch_size: compile[:batch_size],
        language: opts[:language],
        task: opts[:task],
        timestamps: opts[:timestamps]
      })

    serving =
      model_info.model
      |> PyBridge.Serving.new(:speech_to_text_whisper, options)
      |> PyBridge.Serving.batch_size(compile[:batch_size])
      |> PyBridge.Serving.client_preprocessing(fn input ->
        case validate(input, chunk != nil) do
          {:ok, item} -> {[item], :single}
          {:error, message} -> raise ArgumentError, "invalid input, #{message}"
        end
      end)
      |> PyBridge.Serving.client_postprocessing(fn {[result], :single} -> result end)

    if opts[:stream] do
      # The worker sends each chunk map as soon as it is final; the final
      # reply repeats them all and is dropped.
      %{serving | streaming: %{done: false, chunk: &[&1], final: fn _ -> nil end}}
    else
      serving
    end
  end

  # Bumblebee's constructor only matches Whisper specs.
  defp require_whisper!(%{spec: %{model_type: "whisper"}}), do: :ok

  defp require_whisper!(%{spec: spec}) do
    raise ArgumentError,
          "expected a Whisper model (model type \"whisper\"), got model type: #{inspect(spec.model_type)}"
  end

  # A number of seconds above `floor` (0 for a window, -1 for a context that may be 0).
  defp seconds!(nil, _option, _floor), do: nil
  defp seconds!(value, _option, floor) when is_number(value) and value > floor, do: value

  defp seconds!(value, option, floor) do
    what = if floor < 0, do: "a non-negative number", else: "a positive number"
    raise ArgumentError, "expected #{inspect(option)} to be #{what}, got: #{inspect(value)}"
  end

  defp check_windows!(nil, _context, _rate), do: :ok

  defp check_windows!(chunk, context, rate) do
    if floor(chunk * rate) - 2 * floor(context * rate) <= 0 do
      raise ArgumentError,
            ":chunk_num_seconds must be more than double the length of :context_num_seconds"
    end

    :ok
  end

  # Bumblebee keeps Whisper's language and task tokens in the generation
  # config's :extra_config; without one the worker reads the model's own.
  defp extra_config(%{} = extra) do
    extra = if is_struct(extra), do: Map.from_struct(extra), else: extra
    if Enum.any?(@extra_keys, &Map.has_key?(extra, &1)), do: Map.take(extra, @extra_keys)
  end

  defp extra_config(_other), do: nil

  defp check_tokens!(nil, _language, _task), do: :ok

  defp check_tokens!(extra, language, task) do
    tasks = extra[:task_to_token_id] || %{}

    if language do
      if tasks == %{} do
        raise ArgumentError,
              "the generation config does not have any languages defined." <>
                " If you are dealing with a monolingual model, set :language to nil." <>
                " Otherwise you may need to update generation_config.extra_config.language_to_token_id"
      end

      known!(extra[:language_to_token_id] || %{}, language, "language")
    end

    if task do
      if tasks == %{} do
        raise ArgumentError,
              "the generation config does not have any tasks defined." <>
                " If you are dealing with a monolingual model, set :task to nil." <>
                " Otherwise you may need to update generation_config.extra_config.task_to_token_id"
      end

      known!(tasks, task, "task")
    end

    :ok
  end

  defp known!(map, key, what) do
    unless Map.has_key?(map, key) do
      values = map |> Map.keys() |> Enum.sort() |> Enum.map_join(", ", &inspect/1)
      raise ArgumentError, "invalid #{what} #{inspect(key)}, expected one of: #{values}"
    end
  end

  ## Input

  defp validate(%{audio: audio} = input, chunked?) when not is_struct(input) do
    with {:ok, audio} <- audio(audio, chunked?),
         {:ok, seed} <- Generation.seed(input) do
      {:ok, %{audio: audio, seed: seed}}
    end
  end

  defp validate(input, _chunked?) when is_map(input) and not is_struct(input),
    do: {:error, "expected the input map to have :audio key, got: #{inspect(input, limit: 10)}"}

  defp validate(input, chunked?), do: validate(%{audio: input}, chunked?)

  defp audio({:file, path}, _chunked?) when is_binary(path) do
    if File.regular?(path),
      do: {:ok, {:file, Path.expand(path)}},
      else: {:error, "no file found at #{path}"}
  end

  defp audio(%{__struct__: struct} = tensor, _chunked?) when struct in [Nx.Tensor, Tensor],
    do: samples(tensor)

  defp audio(other, chunked?) do
    cond do
      Enumerable.impl_for(other) == nil ->
        {:error,
         "expected audio to be a 1-dimensional tensor, an enumerable, or {:file, path}, got: " <>
           inspect(other, limit: 10)}

      not chunked? ->
        {:error,
         "enumerable input is only supported when chunking is enabled, make sure to set :chunk_num_seconds"}

      true ->
        concatenate(other)
    end
  end

  defp samples(%{shape: {_}, type: {kind, _}} = tensor) when kind in [:f, :bf], do: {:ok, tensor}

  defp samples(%{shape: {_}, type: type}),
    do: {:error, "expected audio samples of a float type, got: #{inspect(type)}"}

  defp samples(%{shape: shape}),
    do:
      {:error,
       "expected audio to be a 1-dimensional tensor, got a tensor of shape #{inspect(shape)}"}

  # The worker takes one audio per request: the pieces of a stream are joined
  # here, in order, into one tensor.
  defp concatenate(enumerable) do
    pieces =
      Enum.map(enumerable, fn
        %{__struct__: struct} = tensor when struct in [Nx.Tensor, Tensor] ->
          case samples(tensor) do
            {:ok, tensor} -> Tensor.to_wire(tensor)
            {:error, message} -> throw({:invalid, message})
          end

        item ->
          throw(
            {:invalid,
             "expected each enumerable item to be a 1-dimensional tensor, got: #{inspect(item, limit: 10)}"}
          )
      end)

    case pieces |> Enum.map(& &1.type) |> Enum.uniq() do
      [] ->
        {:error, "expected the enumerable to hold at least one 1-dimensional tensor, got none"}

      [type] ->
        data = IO.iodata_to_binary(Enum.map(pieces, & &1.data))
        {:ok, Tensor.new(data, type, {div(byte_size(data) * 8, elem(type, 1))})}

      types ->
        {:error, "expected every enumerable item to have the same type, got: #{inspect(types)}"}
    end
  catch
    {:invalid, message} -> {:error, message}
  end
end
