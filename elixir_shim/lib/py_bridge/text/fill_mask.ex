defmodule PyBridge.Text.FillMask do
  @moduledoc false

  alias PyBridge.Shared

  @mask "[MASK]"

  def serving(model_info, %PyBridge.Tokenizer{}, opts) do
    Shared.require_architecture!(model_info, [:for_masked_language_modeling])

    opts =
      Shared.validate_options!(opts, [
        :compile,
        top_k: 5,
        defn_options: [],
        preallocate_params: false
      ])

    compile = Shared.compile!(opts[:compile], [:batch_size, :sequence_length])
    Shared.positive_integer!(opts[:top_k], :top_k)

    options = %{top_k: opts[:top_k], sequence_length: Shared.sequence_length(compile)}

    model_info.model
    |> PyBridge.Serving.new(:fill_mask, options)
    |> PyBridge.Serving.batch_size(compile[:batch_size])
    |> PyBridge.Serving.client_preprocessing(fn input ->
      {texts, multi?} = Shared.batch!(input, &Shared.validate_text/1)
      Enum.each(texts, &validate_mask!/1)
      {texts, multi?}
    end)
    |> PyBridge.Serving.client_postprocessing(fn {results, multi?} ->
      Shared.normalize_output(results, multi?)
    end)
  end

  # As in Bumblebee, this check comes after the input's shape is validated
  # and its message carries no "invalid input" prefix. The worker swaps the
  # literal [MASK] for the tokenizer's own mask token.
  defp validate_mask!(text) do
    count = length(String.split(text, @mask)) - 1

    unless count == 1 do
      raise ArgumentError,
            "expected exactly one occurrence of #{@mask}, got: #{count} in #{inspect(text)}"
    end
  end
end
