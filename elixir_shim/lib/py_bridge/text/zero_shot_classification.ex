defmodule PyBridge.Text.ZeroShotClassification do
  @moduledoc false

  alias PyBridge.Shared

  def serving(model_info, %PyBridge.Tokenizer{}, labels, opts) do
    Shared.require_architecture!(model_info, [:for_sequence_classification])

    opts =
      Shared.validate_options!(opts, [
        :compile,
        hypothesis_template: &default_hypothesis_template/1,
        top_k: 5,
        defn_options: [],
        preallocate_params: false
      ])

    Shared.string_list!(labels, "labels")

    if labels == [] do
      raise ArgumentError, "expected labels to be a non-empty list of strings, got: []"
    end

    compile = Shared.compile!(opts[:compile], [:batch_size, :sequence_length])
    Shared.positive_integer!(opts[:top_k], :top_k)
    require_entailment!(model_info.spec.id_to_label)

    options = %{
      labels: labels,
      hypotheses: hypotheses!(labels, opts[:hypothesis_template]),
      top_k: opts[:top_k],
      sequence_length: Shared.sequence_length(compile)
    }

    Shared.serving(
      model_info,
      :zero_shot_classification,
      options,
      compile,
      &Shared.validate_text/1
    )
  end

  # A function cannot cross to the worker, so the template runs here, once
  # per label, and the worker receives the finished hypotheses.
  defp hypotheses!(labels, template) when is_function(template, 1) do
    Enum.map(labels, fn label ->
      case template.(label) do
        hypothesis when is_binary(hypothesis) ->
          hypothesis

        other ->
          raise ArgumentError,
                "expected :hypothesis_template to return a string, got: #{inspect(other)} for label #{inspect(label)}"
      end
    end)
  end

  defp hypotheses!(_labels, template) do
    raise ArgumentError,
          "expected :hypothesis_template to be a function of one argument, got: #{inspect(template)}"
  end

  defp require_entailment!(id_to_label) do
    unless Enum.any?(id_to_label, fn {_id, label} -> String.downcase(label) == "entailment" end) do
      raise ArgumentError,
            ~s/expected model specification to include "entailment" label in :id_to_label/
    end
  end

  defp default_hypothesis_template(label), do: "This example is #{label}."
end
