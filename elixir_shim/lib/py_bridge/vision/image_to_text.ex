defmodule PyBridge.Vision.ImageToText do
  @moduledoc false

  alias PyBridge.{Featurizer, Shared}
  alias PyBridge.Text.{Generation, GenerationConfig}
  alias PyBridge.Vision.Image

  def serving(
        model_info,
        %Featurizer{} = featurizer,
        %PyBridge.Tokenizer{},
        %GenerationConfig{} = generation_config,
        opts
      ) do
    opts = Shared.validate_options!(opts, [:compile, defn_options: [], preallocate_params: false])
    Shared.require_architecture!(model_info, [:for_conditional_generation])
    compile = Shared.compile!(opts[:compile], [:batch_size])

    if generation_config.max_new_tokens == nil and generation_config.max_length == nil do
      raise ArgumentError,
            "expected either :max_new_tokens or :max_length option, but neither was given"
    end

    options =
      Map.put(
        Featurizer.worker_options(featurizer),
        :generation_config,
        generation_config |> Map.from_struct() |> Map.delete(:extra_config)
      )

    Shared.serving(model_info, :image_to_text, options, compile, &validate/1)
  end

  defp validate(%{image: image} = input) when not is_struct(input) do
    with {:ok, image} <- Image.validate(image),
         {:ok, seed} <- Generation.seed(input) do
      {:ok, %{image: image, seed: seed}}
    end
  end

  defp validate(input) when is_map(input) and not is_struct(input),
    do: {:error, "expected the input map to have :image key, got: #{inspect(input, limit: 10)}"}

  defp validate(input), do: validate(%{image: input})
end
