from tortoise import migrations
from tortoise.migrations import operations as ops
from tortoise.fields.base import OnDelete
from tortoise import fields

class Migration(migrations.Migration):
    dependencies = [('models', '0012_workspace_owners')]

    initial = False

    operations = [
        ops.AlterField(
            model_name='ExportJob',
            name='version',
            field=fields.ForeignKeyField('models.ModelVersion', source_field='version_id', null=True, db_constraint=True, to_field='id', related_name='exports', on_delete=OnDelete.CASCADE),
        ),
        ops.AddField(
            model_name='ExportJob',
            name='fine_tuning_job',
            field=fields.ForeignKeyField('models.FineTuningJob', source_field='fine_tuning_job_id', null=True, db_constraint=True, to_field='id', related_name='exports', on_delete=OnDelete.CASCADE),
        ),
    ]
